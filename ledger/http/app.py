"""The HTTP API: orders in, decisions out, plus health and the known profiles."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial

from eventsourcing.persistence import PersistenceError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from ledger import faults
from ledger.application import Ledger
from ledger.http import openapi
from ledger.http import reads as read_api
from ledger.http.auth import BearerAuth
from ledger.http.limits import HeaderLimit
from ledger.http.responses import JSONResponse, error
from ledger.http.schemas import MAX_BODY, BadRequest, parse_order
from ledger.metrics import Metrics
from ledger.profiles import load as load_profiles
from ledger.settings import Settings
from ledger.store.database import Database
from ledger.writer import Writer, WriterUnavailable
from projections.runner import (
    LedgerProjection,
    ProjectionProcess,
    ProjectionService,
    open_view,
)
from projections.views import LedgerView

log = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    """The request body is over the limit."""


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, refusing early when it is over the limit (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def create_order(request: Request) -> Response:
    """Decide an order for every user who trades its strategy; answer once committed."""
    settings: Settings = request.app.state.settings
    try:
        raw = await asyncio.wait_for(read_body(request), timeout=settings.body_timeout)
    except TimeoutError:
        return error(408, f"body not received within {settings.body_timeout} s")
    except BodyTooLarge:
        return error(413, f"body larger than {MAX_BODY} bytes")
    except ClientDisconnect:
        return error(400, "client disconnected before sending the body")
    try:
        order = parse_order(raw)
    except BadRequest as bad:
        return JSONResponse(bad.body(), status_code=422)
    writer: Writer = request.app.state.writer
    try:
        outcome = await asyncio.wait_for(writer.submit(order), timeout=settings.answer_timeout)
    except TimeoutError:
        return error(
            503,
            f"not answered within {settings.answer_timeout} s; the order may still commit",
            retry="send again with the same ORDER_ID",
        )
    except WriterUnavailable as unavailable:
        return error(503, str(unavailable), retry="send again with the same ORDER_ID")
    if outcome.reused_id:
        return error(
            409,
            "ORDER_ID already used for a different order",
            fields={"ORDER_ID": "already used"},
            order=outcome.answer,
        )
    return JSONResponse(outcome.answer)


async def store_positions(request: Request, timeout: float) -> tuple[int, int]:
    """(the store's last sequence, the read models' processed sequence), within `timeout`."""
    ledger: Ledger = request.app.state.ledger
    view: LedgerView = request.app.state.view

    def read() -> tuple[int, int]:
        return ledger.last_sequence(), view.max_tracking_id(Ledger.name) or 0

    return await asyncio.wait_for(asyncio.to_thread(read), timeout=timeout)


async def health(request: Request) -> Response:
    """200 when the database answers, 503 when it does not."""
    settings: Settings = request.app.state.settings
    writer: Writer = request.app.state.writer
    service: ProjectionService | ProjectionProcess | None = request.app.state.projections
    try:
        sequence, processed = await store_positions(request, settings.db_timeout + 1)
    except (PersistenceError, TimeoutError, OSError) as failure:
        log.warning("health check: database unreachable: %s", failure)
        asyncio.get_running_loop().run_in_executor(None, request.app.state.heal)
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable", "detail": str(failure)},
            status_code=503,
        )
    return JSONResponse(
        {
            "status": "ok",
            "database": "ok",
            "sequence": sequence,
            "queued": writer.queued,
            "projections": {
                LedgerProjection.name: {
                    "processed": processed,
                    "lag": max(0, sequence - processed),
                    "runner": settings.projections,
                    "alive": service is not None and service.alive,
                }
            },
        }
    )


async def metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    writer: Writer = request.app.state.writer
    sequence: int | None
    processed: int | None
    try:
        sequence, processed = await store_positions(request, 5)
    except (PersistenceError, TimeoutError):
        sequence = processed = None
    body = request.app.state.metrics.render(sequence, processed, writer.queued)
    return Response(body, media_type="text/plain; version=0.0.4")


async def openapi_json(request: Request) -> Response:
    """The OpenAPI document."""
    return JSONResponse(openapi.schema())


async def docs(request: Request) -> Response:
    """A page that renders the OpenAPI document."""
    return Response(openapi.DOCS, media_type="text/html")


async def users(request: Request) -> Response:
    """The profiles as the ledger imported them at start."""
    return JSONResponse(request.app.state.profiles)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (404, 405) as JSON too."""
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, exc.detail)


async def server_error(request: Request, exc: Exception) -> Response:
    """A bug, not bad input: log it and say so in JSON."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error(500, "internal error")


def routes() -> list[Route]:
    """The write-side endpoints."""
    return [
        Route("/order", create_order, methods=["POST"]),
        Route("/create_order", create_order, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/users", users, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        *read_api.routes(),
    ]


@contextlib.contextmanager
def _reported(step: str) -> Iterator[None]:
    try:
        yield
    except Exception:
        log.exception("shutting down %s failed", step)


def _heal(database: Database, ledger: Ledger, view: LedgerView) -> None:
    """After a database failure: restart an embedded server, drop broken pooled connections."""
    database.revive()
    for datastore in (ledger.recorder.datastore, view.datastore):  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            datastore.pool.check()


def _child_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # the URL is an argument
    env.update(
        LEDGER_DB_SCHEMA=settings.db_schema,
        LEDGER_LOG_DIR=str(settings.log_dir),
        LEDGER_LOG_LEVEL=settings.log_level,
        LEDGER_FAULTS=settings.faults,
    )
    return env


def create_app(settings: Settings) -> Starlette:
    """Build the application; the database and the writer start with the lifespan."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        faults.install(settings.faults)
        database = await asyncio.to_thread(Database.open, settings)
        ledger: Ledger | None = None
        writer: Writer | None = None
        view: LedgerView | None = None
        service: ProjectionService | ProjectionProcess | None = None
        try:
            ledger = Ledger(env=database.eventsourcing_env())
            app.state.view = view = await asyncio.to_thread(open_view, database.eventsourcing_env())
            if settings.profiles is not None:
                report = await asyncio.to_thread(
                    ledger.import_profiles, load_profiles(settings.profiles)
                )
                log.info(
                    "profiles %s: %d added, %d changed, %d dropped",
                    settings.profiles,
                    len(report.added),
                    len(report.changed),
                    len(report.dropped),
                )
            app.state.profiles = await asyncio.to_thread(ledger.profiles)
            app.state.settings = settings
            app.state.ledger = ledger
            app.state.metrics = Metrics()
            app.state.heal = partial(_heal, database, ledger, view)
            app.state.writer = writer = Writer(
                ledger,
                max_batch=settings.max_batch,
                metrics=app.state.metrics,
                on_failure=app.state.heal,
            )
            writer.start()
            if settings.projections == "thread":
                service = ProjectionService(database.eventsourcing_env(), database.url)
            elif settings.projections == "process":
                service = ProjectionProcess(database.url, _child_env(settings))
            app.state.projections = service
            if service is not None:
                service.start()
            log.info("ledger ready at sequence %d", await asyncio.to_thread(ledger.last_sequence))
            yield
        finally:
            # Each step runs even if one before it failed: no pool, process or server is left.
            with _reported("writer"):
                if writer is not None:
                    await writer.stop()
            with _reported("projections"):
                if service is not None:
                    await asyncio.to_thread(service.stop)
            for name, close in (
                ("read models", view.datastore.close if view is not None else None),
                ("ledger", ledger.close if ledger is not None else None),
                ("database", database.close),
            ):
                with _reported(name):
                    if close is not None:
                        close()
            log.info("ledger stopped")

    middleware = [Middleware(HeaderLimit)]
    if settings.api_token:
        middleware.append(Middleware(BearerAuth, token=settings.api_token))
    return Starlette(
        routes=routes(),
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
