"""The HTTP application: routes, middleware and error handlers around the running services."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ledger.bootstrap import Role, Services
from ledger.http import console, docs, ops, orders, reads, stream, users
from ledger.http.auth import BearerAuth
from ledger.http.limits import AnswerBudget, HeaderLimit
from ledger.http.responses import error
from ledger.logs import logfmt
from ledger.settings import Settings

log = logging.getLogger(__name__)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (404, 405) as JSON too."""
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, exc.detail)


async def server_error(request: Request, exc: Exception) -> Response:
    """A bug, not bad input: log it and say so in JSON."""
    path = logfmt(request.url.path)  # client input: quoted and escaped
    log.error("unhandled error on %s %s", request.method, path, exc_info=exc)
    return error(500, "internal error")


def routes() -> list[BaseRoute]:
    """Every endpoint."""
    return [
        *orders.routes(),
        *ops.routes(),
        *users.routes(),
        *reads.routes(),
        *stream.routes(),
        *docs.routes(),
        *console.routes(),
    ]


def create_app(
    settings: Settings, role: Role = "all", run_dir: Path | None = None, writers: int = 1
) -> Starlette:
    """Build the application; the services (see Services for the roles) start with its lifespan."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        running = Services(settings, role=role, run_dir=run_dir, writers=writers)
        await running.start()
        app.state.services = running
        try:
            yield
        finally:
            await running.stop()

    middleware = [Middleware(HeaderLimit), Middleware(AnswerBudget)]
    if settings.api_token:
        middleware.append(Middleware(BearerAuth, token=settings.api_token))
    app = Starlette(
        routes=routes(),
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    # A path is one resource or 404: a redirect could point at another order, and its
    # Location would echo the client's Host header.
    app.router.redirect_slashes = False
    return app
