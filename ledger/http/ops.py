"""Operations endpoints: health, Prometheus metrics, the API description."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import orjson
import psycopg
from eventsourcing.persistence import PersistenceError
from eventsourcing.postgres import PostgresApplicationRecorder
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledger import metrics as metrics_module
from ledger.answers import Health, ProjectionHealth, Unhealthy
from ledger.bootstrap import Services
from ledger.http import openapi
from ledger.http.responses import JSONResponse
from ledger.http.spec import Doc, documented
from ledger.http.state import services
from projections.projection import LedgerProjection

log = logging.getLogger(__name__)

# Its own thread and its own connection: reads that take every read thread and pooled
# connection must not make the health check report the database unreachable.
HEALTH_CHECKS = ThreadPoolExecutor(1, thread_name_prefix="ledger-health")


def database_check(running: Services) -> tuple[int, int]:
    """(the store's last sequence, the projection's), asked on a connection of its own."""
    timeout = running.settings.db_timeout
    recorder = running.ledger.recorder
    assert isinstance(recorder, PostgresApplicationRecorder)
    with psycopg.connect(
        running.database.url,
        connect_timeout=timeout,
        autocommit=True,
        options=f"-c statement_timeout={timeout * 1000}",
    ) as conn:
        # The recorders' own statements: the same numbers as Services.positions().
        top = conn.execute(recorder.max_notification_id_statement).fetchone()
        done = conn.execute(
            running.view.max_tracking_id_statement, (running.ledger.name,)
        ).fetchone()
    return (top[0] if top else None) or 0, (done[0] if done else None) or 0


def check(request: Request, running: Services) -> asyncio.Future[tuple[int, int]]:
    """The database check; concurrent health requests share the one in flight."""
    state = request.app.state
    pending: asyncio.Future[tuple[int, int]] | None = getattr(state, "health_check", None)
    if pending is None or pending.done():
        loop = asyncio.get_running_loop()
        pending = state.health_check = loop.run_in_executor(HEALTH_CHECKS, database_check, running)
        # Read the outcome even when every waiter timed out, so it is never logged as lost.
        pending.add_done_callback(lambda done: done.cancelled() or done.exception())
    return pending


@documented(
    Doc(
        "Liveness, the store's sequence and the projection lag",
        Health,
        answers={503: (Unhealthy, "database unreachable")},
        public=True,
    )
)
async def health(request: Request) -> Response:
    """200 when the database answers and takes writes (degraded if reads lag), else 503."""
    running = services(request)
    wait = running.settings.db_timeout + 1
    pending = check(request, running)
    try:
        try:
            sequence, processed = await asyncio.wait_for(asyncio.shield(pending), timeout=wait)
        except TimeoutError:
            if not pending.done() or pending.cancelled() or pending.exception() is not None:
                raise TimeoutError(f"the check did not end within {wait} s") from None
            # The database answered in time; this process's loop was late to read it.
            sequence, processed = pending.result()
    except (PersistenceError, psycopg.Error, TimeoutError, OSError) as failure:
        log.warning("health check: database unreachable: %s", failure)
        asyncio.get_running_loop().run_in_executor(None, running.heal)
        return JSONResponse(Unhealthy("unavailable", "unreachable", str(failure)), status_code=503)
    failing = running.desk.failing
    if failing is not None:
        # The database answers reads, but commits fail (a full disk, say): orders get 503.
        return JSONResponse(Unhealthy("unavailable", "writes failing", failing), status_code=503)
    stalled = running.projection_stalled(sequence, processed)
    return JSONResponse(
        Health(
            status="degraded" if stalled else "ok",  # still 200: orders and reads are served
            database="ok",
            sequence=sequence,
            queued=running.desk.queued,
            projections={
                LedgerProjection.name: ProjectionHealth(
                    processed=processed,
                    lag=max(0, sequence - processed),
                    runner=running.settings.projections,
                    alive=running.projector_alive(),
                    stalled=stalled,
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
    body = running.metrics.render(sequence, processed, running.desk.queued)
    return Response(body, media_type=metrics_module.CONTENT_TYPE)


@documented(Doc("This document", media_type="application/json"))
async def openapi_json(request: Request) -> Response:
    """The OpenAPI document, generated from the app's routes (once per app)."""
    state = request.app.state
    if getattr(state, "openapi", None) is None:
        state.openapi = orjson.dumps(openapi.document(request.app.routes))
    return Response(state.openapi, media_type="application/json")


def routes() -> list[Route]:
    """Health, metrics and the API description (GET /users is in ledger.http.users)."""
    return [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
