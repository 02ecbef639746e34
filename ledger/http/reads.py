"""The read API: open positions, the order log and closed trades, from the read models."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from eventsourcing.persistence import PersistenceError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledger.answers import LoggedOrder, OrdersPage, Positions, TradesPage
from ledger.bootstrap import Services
from ledger.http.queries import (
    WAIT_LIMIT,
    BadQuery,
    OrdersQuery,
    PositionsQuery,
    Query,
    TradesQuery,
    parse,
)
from ledger.http.responses import JSONResponse, error
from ledger.http.spec import Doc, documented
from ledger.http.state import services
from ledger.names import valid_name
from projections import queries

Reader = Callable[[Services, Any, Request], Awaitable[Any]]


async def caught_up(running: Services, sequence: int | None) -> bool:
    """Wait until the projections have processed the store up to `sequence` (at most 2 s)."""
    if sequence is None:
        return True
    if sequence > await asyncio.to_thread(running.ledger.last_sequence):
        return False  # not in the store at all: waiting would not help
    deadline = asyncio.get_running_loop().time() + WAIT_LIMIT
    while True:
        processed = await asyncio.to_thread(running.view.max_tracking_id, running.ledger.name)
        if (processed or 0) >= sequence:
            return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.01)  # the projection runs in another thread, or process


READ_ERRORS = {
    422: "a query parameter is not usable",
    503: "the read models have not reached min_sequence in time, or no database",
}


def endpoint(read: Reader, doc: Doc) -> Callable[[Request], Awaitable[Response]]:
    """A read endpoint: parse the query, wait for min_sequence, run the read, answer JSON."""
    model = doc.query if doc.query is not None and issubclass(doc.query, Query) else Query
    doc = replace(doc, query=model, errors={**READ_ERRORS, **doc.errors})

    @documented(doc)
    async def handle(request: Request) -> Response:
        try:
            query = parse(model, request.query_params)
        except BadQuery as bad:
            return error(422, "bad query parameter", fields=bad.fields)
        running = services(request)
        try:
            async with asyncio.timeout(WAIT_LIMIT + 3):  # the database's retries must not stall
                if not await caught_up(running, query.min_sequence):
                    wanted = query.min_sequence
                    return error(503, f"projections have not reached sequence {wanted}; retry")
                result = await read(running, query, request)
        except TimeoutError:
            return error(503, "the database did not answer in time")
        except PersistenceError as failure:
            asyncio.get_running_loop().run_in_executor(None, running.heal)
            return error(503, f"database unavailable: {failure}")
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    return handle


async def positions(running: Services, query: PositionsQuery, request: Request) -> Any:
    """Open positions now, or as of a past sequence (folded from the events)."""
    if query.as_of is None:
        return await asyncio.to_thread(queries.positions, running.view, query.filters())
    return await asyncio.to_thread(
        queries.positions_as_of, running.ledger, query.as_of, query.filters()
    )


async def orders(running: Services, query: OrdersQuery, request: Request) -> Any:
    """A page of the order log."""
    return await asyncio.to_thread(
        queries.orders, running.view, query.filters(), query.limit, query.after
    )


async def trades(running: Services, query: TradesQuery, request: Request) -> Any:
    """A page of closed trades."""
    return await asyncio.to_thread(
        queries.trades, running.view, query.filters(), query.limit, query.after
    )


async def order(running: Services, query: Query, request: Request) -> Any:
    """One order of the log, or 404."""
    order_id = request.path_params["order_id"]
    # No other ORDER_ID is ever stored: no need to ask the database.
    found = (
        await asyncio.to_thread(queries.order, running.view, order_id)
        if valid_name(order_id)
        else None
    )
    return found if found is not None else error(404, "unknown order", order_id=order_id)


def routes() -> list[Route]:
    """The read endpoints, each with its query model and answer type."""
    return [
        Route(
            "/positions",
            endpoint(positions, Doc("Open positions", Positions, PositionsQuery)),
            methods=["GET"],
        ),
        Route(
            "/orders",
            endpoint(orders, Doc("The order log, ascending sequence", OrdersPage, OrdersQuery)),
            methods=["GET"],
        ),
        Route(
            "/orders/{order_id}",
            endpoint(order, Doc("One order of the log", LoggedOrder, errors={404: "unknown"})),
            methods=["GET"],
        ),
        Route(
            "/trades",
            endpoint(
                trades, Doc("Closed trades, in the order they closed", TradesPage, TradesQuery)
            ),
            methods=["GET"],
        ),
    ]
