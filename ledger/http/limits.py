"""Refuse requests whose headers are too large (the HTTP parser itself does not bound them)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from ledger.http.responses import send_error

MAX_HEADERS = 16 * 1024


class HeaderLimit:
    """ASGI middleware: 431 when the request's headers add up to more than MAX_HEADERS bytes."""

    def __init__(self, app: ASGIApp, limit: int = MAX_HEADERS) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            size += len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            if size > self.limit:
                message = f"request headers larger than {self.limit} bytes"
                await send_error(send, 431, message, (b"connection", b"close"))
                return
        await self.app(scope, receive, send)
