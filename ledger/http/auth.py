"""Bearer-token authentication for every endpoint but /health and the docs and console pages."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from ledger.http.responses import send_error

# A browser must load the docs page (and the console, "/") and their files before anyone can
# type a token; the pages then fetch their data with it. "/docs/" is not the page (no
# redirects): it needs one.
OPEN_PATHS = frozenset({"/health", "/docs", "/"})
# Safe as prefixes: such paths reach only the static mounts, which refuse "..".
OPEN_PREFIXES = ("/docs/assets/", "/console/assets/")


class BearerAuth:
    """ASGI middleware: 401 unless one `Authorization: Bearer <token>` matches (constant time)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = token.encode()

    def _valid(self, credentials: bytes) -> bool:
        """The scheme in any case (RFC 7235), then spaces, then exactly the token."""
        scheme, _, token = credentials.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(
            token.lstrip(b" "), self.expected
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")  # a lifespan scope has none
        if (
            scope["type"] == "http"
            and path not in OPEN_PATHS
            and not path.startswith(OPEN_PREFIXES)
        ):
            given = [value for name, value in scope["headers"] if name == b"authorization"]
            # Two headers are refused, not judged: a proxy or framework that reads the other
            # one would see a different caller than the one checked here.
            if len(given) != 1 or not self._valid(given[0]):
                await send_error(
                    send, 401, "missing or wrong bearer token", (b"www-authenticate", b"Bearer")
                )
                return
        await self.app(scope, receive, send)
