"""Bearer-token authentication for every endpoint but /health."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from ledger.http.responses import send_error

OPEN_PATHS = frozenset({"/health"})


class BearerAuth:
    """ASGI middleware: 401 unless `Authorization: Bearer <token>` matches (constant time)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = b"Bearer " + token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            given = b""
            for name, value in scope["headers"]:
                if name == b"authorization":
                    given = value
            if not hmac.compare_digest(given, self.expected):
                await send_error(
                    send, 401, "missing or wrong bearer token", (b"www-authenticate", b"Bearer")
                )
                return
        await self.app(scope, receive, send)
