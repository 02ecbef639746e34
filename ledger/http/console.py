"""The console page: a live view of the ledger, served from the package.

Plain HTML, CSS and JavaScript modules written by hand (ledger/http/console/), no build step and
nothing fetched from elsewhere. The page and its files need no token; every data request it
makes does (it asks for the token once, keeps it for the tab and sends it as a header).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ledger.http.spec import Doc, documented

ASSETS = Path(__file__).parent / "console"
# The page may only load its own files and talk to its own origin.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@documented(
    Doc(
        "The console: live orders, positions, trades and users, and an order ticket",
        media_type="text/html",
        public=True,
    )
)
async def page(request: Request) -> Response:
    """The console's single page; its scripts and styles are under console/assets/."""
    return Response(
        (ASSETS / "index.html").read_bytes(),
        media_type="text/html",
        headers={"Content-Security-Policy": POLICY, "Cache-Control": "no-cache"},
    )


def routes() -> list[BaseRoute]:
    """The console page and its static files."""
    return [
        Route("/", page, methods=["GET"]),
        Mount("/console/assets", StaticFiles(directory=ASSETS), name="console-assets"),
    ]
