"""Operations endpoints: health, Prometheus metrics, the users known, the API description."""

from __future__ import annotations

import asyncio
import logging

from eventsourcing.persistence import PersistenceError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledger import metrics as metrics_module
from ledger.answers import Health, ProjectionHealth, Unhealthy
from ledger.http import openapi
from ledger.http.responses import JSONResponse
from ledger.http.state import services
from projections.projection import LedgerProjection

log = logging.getLogger(__name__)


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


async def openapi_json(request: Request) -> Response:
    """The OpenAPI document."""
    return JSONResponse(openapi.document())


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
