"""Operations endpoints: health, Prometheus metrics, the users known, the API description."""

from __future__ import annotations

import asyncio
import logging

import orjson
from eventsourcing.persistence import PersistenceError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledger import metrics as metrics_module
from ledger.answers import Health, Profiles, ProjectionHealth, Unhealthy
from ledger.http import openapi
from ledger.http.responses import JSONResponse
from ledger.http.spec import Doc, documented
from ledger.http.state import services
from projections.projection import LedgerProjection

log = logging.getLogger(__name__)


@documented(
    Doc(
        "Liveness, the store's sequence and the projection lag",
        Health,
        answers={503: (Unhealthy, "database unreachable")},
        public=True,
    )
)
async def health(request: Request) -> Response:
    """200 when the database answers, 503 when it does not."""
    running = services(request)
    try:
        sequence, processed = await asyncio.wait_for(
            asyncio.to_thread(running.positions), timeout=running.settings.db_timeout + 1
        )
    except (PersistenceError, TimeoutError, OSError) as failure:
        log.warning("health check: database unreachable: %s", failure)
        asyncio.get_running_loop().run_in_executor(None, running.heal)
        return JSONResponse(Unhealthy("unavailable", "unreachable", str(failure)), status_code=503)
    projector = running.projector
    return JSONResponse(
        Health(
            status="ok",
            database="ok",
            sequence=sequence,
            queued=running.writer.queued,
            projections={
                LedgerProjection.name: ProjectionHealth(
                    processed=processed,
                    lag=max(0, sequence - processed),
                    runner=running.settings.projections,
                    alive=projector is not None and projector.alive,
                )
            },
        )
    )


@documented(Doc("Prometheus metrics", media_type="text/plain"))
async def metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    running = services(request)
    sequence: int | None
    processed: int | None
    try:
        sequence, processed = await asyncio.wait_for(asyncio.to_thread(running.positions), 5)
    except (PersistenceError, TimeoutError):
        sequence = processed = None
    body = running.metrics.render(sequence, processed, running.writer.queued)
    return Response(body, media_type=metrics_module.CONTENT_TYPE)


@documented(Doc("This document", media_type="application/json"))
async def openapi_json(request: Request) -> Response:
    """The OpenAPI document, generated from the app's routes (once per app)."""
    state = request.app.state
    if getattr(state, "openapi", None) is None:
        state.openapi = orjson.dumps(openapi.document(request.app.routes))
    return Response(state.openapi, media_type="application/json")


@documented(Doc("The profiles as imported at start", Profiles))
async def users(request: Request) -> Response:
    """The profiles as the ledger imported them at start."""
    return JSONResponse(services(request).profiles)


def routes() -> list[Route]:
    """Health, metrics, users and the API description."""
    return [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/users", users, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
