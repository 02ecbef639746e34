"""The read API: open positions, the order log and closed trades, from the read models."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import Any

from eventsourcing.persistence import PersistenceError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledger.answers import DecisionsPage, LoggedOrder, OrdersPage, Pnl, Positions, TradesPage
from ledger.bootstrap import Services
from ledger.http.lanes import HISTORY, POLLS, READS, RETRY_AFTER, Busy, PiecesResponse
from ledger.http.queries import (
    WAIT_LIMIT,
    BadQuery,
    DecisionsQuery,
    OrdersQuery,
    PnlQuery,
    PositionsQuery,
    Query,
    TradesQuery,
    parse,
)
from ledger.http.responses import JSONResponse, error
from ledger.http.spec import Doc, documented
from ledger.http.state import services
from ledger.http.user_paths import NamedRoute
from ledger.names import valid_name
from projections import decisions as decision_pages
from projections import pnl as pnl_reads
from projections import queries

Reader = Callable[[Services, Any, Request], Awaitable[Any]]


async def caught_up(running: Services, sequence: int | None, **named: int | None) -> bool:
    """Wait until the projections have processed the store up to `sequence` and every named
    one (at most 2 s); BadQuery naming the first parameter the store does not hold yet."""
    given = {name: n for name, n in {"min_sequence": sequence, **named}.items() if n is not None}
    if not given:
        return True
    top = await POLLS.run(lambda _: running.ledger.last_sequence())
    for name, n in given.items():
        if n > top:
            # Every sequence a client was given is committed before its answer: one beyond the
            # store is a client's mistake (or another's write still to come), not ours to wait on.
            raise BadQuery({name: f"{n} is beyond the store's last sequence {top}"})
    sequence = max(given.values())
    deadline = asyncio.get_running_loop().time() + WAIT_LIMIT
    while True:
        processed = await POLLS.run(lambda _: running.view.max_tracking_id(running.ledger.name))
        if (processed or 0) >= sequence:
            return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.01)  # the projection runs in another thread, or process


READ_BUDGET = WAIT_LIMIT + 3  # seconds a read may take in all, min_sequence wait included

READ_ERRORS = {
    404: "min_sequence (or as_of) is beyond the store's last sequence: nothing to wait for",
    422: "a query parameter is not usable",
    503: "the read models have not reached min_sequence (or as_of) in time, no database, the read"
    f" did not finish within {READ_BUDGET:g} s, or busy: every read thread is taken (error `busy`,"
    f" Retry-After: {RETRY_AFTER})",
}


async def disconnected(request: Request) -> None:
    """Return once the client has gone (a GET has no body: the next message is the end)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def answer(read: Reader, running: Services, query: Any, request: Request) -> Response:
    """Wait for min_sequence, run the read, answer JSON, or the error that stopped it."""
    try:
        async with asyncio.timeout(READ_BUDGET):  # the database's retries must not stall
            # A read as of a past sequence reads the read tables once they hold it.
            as_of = getattr(query, "as_of", None)
            if not await caught_up(running, query.min_sequence, as_of=as_of):
                wanted = max(n for n in (query.min_sequence, as_of) if n is not None)
                return error(503, f"projections have not reached sequence {wanted}; retry")
            result = await read(running, query, request)
    except BadQuery as beyond:
        # 404, not 422: the request is well-formed, the store just does not hold it (yet).
        name = next(iter(beyond.fields), "min_sequence")
        return error(404, f"{name} is not in the store yet", fields=beyond.fields)
    except Busy:
        return error(
            503,
            "busy",
            retry=f"every read thread is taken: retry in {RETRY_AFTER} s",
            headers={"Retry-After": str(RETRY_AFTER)},
        )
    except TimeoutError:
        # The budget ran out: waiting for the database, or working (a page as of far back
        # sorts every trade closed since), or a statement over the view's statement_timeout.
        return error(503, f"the read did not finish within {READ_BUDGET:g} s")
    except PersistenceError as failure:
        asyncio.get_running_loop().run_in_executor(None, running.heal)
        return error(503, f"database unavailable: {failure}")
    if isinstance(result, Response):
        return result
    if isinstance(result, bytes):  # encoded by the read itself
        return Response(result, media_type="application/json")
    if isinstance(result, list):  # encoded by the read itself, in pieces
        return PiecesResponse(result)
    return JSONResponse(result)


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
        reading = asyncio.ensure_future(answer(read, services(request), query, request))
        gone = asyncio.ensure_future(disconnected(request))
        try:
            await asyncio.wait({reading, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not reading.done():  # the client left (or the server stops): stop the read
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reading
        if reading.cancelled():
            return error(503, "the client went away")
        return reading.result()

    return handle


async def positions(running: Services, query: PositionsQuery, request: Request) -> Any:
    """Open positions now, or as of a past sequence."""
    page = query.filters(), query.limit, query.after
    lane = READS if query.as_of is None else HISTORY
    return await lane.run(
        lambda cancellation: queries.positions(
            running.view, *page, cancellation=cancellation, as_of=query.as_of
        )
    )


async def pnl(running: Services, query: PnlQuery, request: Request) -> Any:
    """Realised P&L now, or as of a past sequence."""
    lane = READS if query.as_of is None else HISTORY
    return await lane.run(
        lambda cancellation: pnl_reads.pnl(
            running.view, query.filters(), cancellation, as_of=query.as_of
        )
    )


async def orders(running: Services, query: OrdersQuery, request: Request) -> Any:
    """A page of the order log, bounded in orders and in bytes."""
    filters, limit, after = query.filters(), query.limit, query.after
    return await READS.run(
        partial(
            queries.orders_json,
            running.view,
            filters,
            limit,
            after,
            newest_first=query.newest_first,
        )
    )


async def trades(running: Services, query: TradesQuery, request: Request) -> Any:
    """A page of closed trades."""
    filters, limit, after = query.filters(), query.limit, query.after
    return await READS.run(
        partial(
            queries.trades, running.view, filters, limit, after, newest_first=query.newest_first
        )
    )


async def order(running: Services, query: Query, request: Request) -> Any:
    """One order of the log, or 404."""
    order_id = request.path_params["order_id"]
    if not valid_name(order_id):
        # No other ORDER_ID is ever stored: no need to ask the database. Not echoed: it may
        # hold what JSON cannot (bytes that are not UTF-8, as lone surrogates).
        return error(404, "unknown order")
    found = await READS.run(partial(queries.order_json, running.view, order_id))
    return found if found is not None else error(404, "unknown order", order_id=order_id)


async def decisions(running: Services, query: DecisionsQuery, request: Request) -> Any:
    """A page of one order's decisions, or 404."""
    order_id, limit, after = query.order_id, query.limit, query.after
    found = await READS.run(partial(decision_pages.decisions, running.view, order_id, limit, after))
    return found if found is not None else error(404, "unknown order", order_id=order_id)


ORDERS_DOC = (
    "Pages hold at most `limit` orders and stop before"
    f" {queries.PAGE_BYTES // 2**20} MiB of JSON (one order at least), so a page of orders"
    " fanned out to many users is cut short with a `next` cursor. Each order carries its"
    " whole decision lists; `/decisions` pages one order's decisions."
)
PNL_DOC = (
    "Realised P&L of the closed trades: (exit price - entry price) x the booked quantity, summed"
    " exactly, per user, per strategy and in all, as decimal strings. `winners` made more than"
    " 0, `losers` less. A trade whose BUY or SELL gave no price counts in `trades` and"
    " `unpriced`, never in `realised_pnl`, `winners` or `losers`. The filters select trades;"
    " `as_of` takes those closed up to that sequence."
)
DECISIONS_DOC = (
    "One order's decisions, a page at a time: the users it was booked for (in the answer's"
    " `accepted_for` order), then those it was refused for (`rejected_for` order), with the"
    " totals of each. For orders fanned out to thousands of users."
)


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
            endpoint(
                orders,
                Doc(
                    "The order log, ascending sequence (or newest first)",
                    OrdersPage,
                    OrdersQuery,
                    description=ORDERS_DOC,
                ),
            ),
            methods=["GET"],
        ),
        Route(
            "/decisions",
            endpoint(
                decisions,
                Doc(
                    "One order's decisions, paged",
                    DecisionsPage,
                    DecisionsQuery,
                    description=DECISIONS_DOC,
                    errors={404: "unknown order"},
                ),
            ),
            methods=["GET"],
        ),
        NamedRoute(
            # Matched in the raw path, as the users' paths: an ORDER_ID may hold "/" (as %2F),
            # and bytes that are not UTF-8 (%FF) are no name, not U+FFFD ("x%FF" read "x\ufffd").
            "/orders/{order_id:path}",
            endpoint(
                order,
                Doc(
                    "One order of the log",
                    LoggedOrder,
                    errors={404: "unknown order, or min_sequence beyond the store"},
                ),
            ),
            methods=["GET"],
        ),
        Route(
            "/pnl",
            endpoint(pnl, Doc("Realised P&L", Pnl, PnlQuery, description=PNL_DOC)),
            methods=["GET"],
        ),
        Route(
            "/trades",
            endpoint(
                trades,
                Doc(
                    "Closed trades, in the order they closed (or newest first)",
                    TradesPage,
                    TradesQuery,
                ),
            ),
            methods=["GET"],
        ),
    ]
