"""Bearer-token authentication for every endpoint but /health and the docs page."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from ledger.http.responses import send_error

# A browser must load the docs page and its files before anyone can type a token; the page
# then fetches /openapi.json with it. "/docs/" only redirects to "/docs".
OPEN_PATHS = frozenset({"/health", "/docs", "/docs/"})
# Safe as a prefix: such paths reach only the static mount, which refuses "..".
OPEN_PREFIXES = ("/docs/assets/",)


class BearerAuth:
    """ASGI middleware: 401 unless `Authorization: Bearer <token>` matches (constant time)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = b"Bearer " + token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")  # a lifespan scope has none
        if (
            scope["type"] == "http"
            and path not in OPEN_PATHS
            and not path.startswith(OPEN_PREFIXES)
        ):
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
