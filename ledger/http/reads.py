"""The read API: open positions, the order log and closed trades, from the read models."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from eventsourcing.persistence import PersistenceError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledger.application import Ledger
from ledger.http.responses import JSONResponse, error
from ledger.http.schemas import printable
from projections import queries
from projections.queries import DEFAULT_LIMIT, MAX_LIMIT, Filters
from projections.views import LedgerView

INT64 = 2**63 - 1
WAIT_LIMIT = 2.0  # seconds a min_sequence read waits for the projections
NAMES = ("user", "strategy", "instrument")


class BadQuery(Exception):
    """A query parameter is not usable; maps to 422."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


def _params(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            raise BadQuery(name[:64], "unknown parameter")
        if name in params:
            raise BadQuery(name, "given more than once")
        params[name] = value
    return params


def _int(params: dict[str, str], name: str, low: int, high: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or int(raw) > INT64:
        raise BadQuery(name, "must be a non-negative integer below 2**63")
    value = int(raw)
    if value < low or (high is not None and value > high):
        raise BadQuery(name, f"must be between {low} and {high}" if high else f"must be >= {low}")
    return value


def _name(params: dict[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not 1 <= len(value) <= 64 or not printable(value):
        raise BadQuery(name, "must be 1-64 characters without control characters")
    return value


def _filters(params: dict[str, str]) -> Filters:
    status = params.get("status")
    if status is not None and status not in ("ACCEPTED", "REJECTED"):
        raise BadQuery("status", "must be ACCEPTED or REJECTED")
    return Filters(
        user=_name(params, "user"),
        strategy=_name(params, "strategy"),
        instrument=_name(params, "instrument"),
        status=status,
    )


async def caught_up(request: Request, sequence: int | None) -> bool:
    """Wait until the projections have processed the store up to `sequence` (at most 2 s)."""
    if sequence is None:
        return True
    view: LedgerView = request.app.state.view
    ledger: Ledger = request.app.state.ledger
    if sequence > await asyncio.to_thread(ledger.last_sequence):
        return False  # not in the store at all: waiting would not help
    deadline = asyncio.get_running_loop().time() + WAIT_LIMIT
    while True:
        processed = await asyncio.to_thread(view.max_tracking_id, Ledger.name)
        if (processed or 0) >= sequence:
            return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.01)  # the projection runs in another thread, or process


def _endpoint(
    allowed: tuple[str, ...], handler: Callable[[Request, dict[str, str]], Any]
) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            params = _params(request, (*allowed, "min_sequence"))
            wanted = _int(params, "min_sequence", 0)
            result = handler(request, params)  # validates the parameters before any wait
        except BadQuery as bad:
            return error(422, "bad query parameter", fields={bad.name: bad.problem})
        try:
            async with asyncio.timeout(WAIT_LIMIT + 3):  # the database's retries must not stall
                if not await caught_up(request, wanted):
                    return error(503, f"projections have not reached sequence {wanted}; retry")
                answer: Response = await result()
        except TimeoutError:
            return error(503, "the database did not answer in time")
        except PersistenceError as failure:
            asyncio.get_running_loop().run_in_executor(None, request.app.state.heal)
            return error(503, f"database unavailable: {failure}")
        return answer

    return endpoint


def _positions(request: Request, params: dict[str, str]) -> Any:
    filters = _filters(params)
    as_of = _int(params, "as_of", 0)
    view: LedgerView = request.app.state.view
    ledger: Ledger = request.app.state.ledger

    async def run() -> Response:
        if as_of is None:
            rows = await asyncio.to_thread(queries.positions, view, filters)
        else:
            rows = await asyncio.to_thread(queries.positions_as_of, ledger, as_of, filters)
        return JSONResponse({"positions": rows})

    return run


def _paged(name: str, query: Callable[..., Any]) -> Callable[[Request, dict[str, str]], Any]:
    """A paginated read: {name: [...], "next": cursor}."""

    def prepare(request: Request, params: dict[str, str]) -> Any:
        filters = _filters(params)
        limit = _int(params, "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT
        after = _int(params, "after", 0)
        view: LedgerView = request.app.state.view

        async def run() -> Response:
            rows, cursor = await asyncio.to_thread(query, view, filters, limit, after)
            return JSONResponse({name: rows, "next": cursor})

        return run

    return prepare


def _order(request: Request, params: dict[str, str]) -> Any:
    order_id = request.path_params["order_id"]
    view: LedgerView = request.app.state.view
    valid = 1 <= len(order_id) <= 64 and printable(order_id)  # no other ORDER_ID is stored

    async def run() -> Response:
        row = await asyncio.to_thread(queries.order, view, order_id) if valid else None
        if row is None:
            return error(404, "unknown order", order_id=order_id)
        return JSONResponse(row)

    return run


def routes() -> list[Route]:
    """The read endpoints."""
    return [
        Route("/positions", _endpoint((*NAMES, "as_of"), _positions), methods=["GET"]),
        Route(
            "/orders",
            _endpoint((*NAMES, "status", "limit", "after"), _paged("orders", queries.orders)),
            methods=["GET"],
        ),
        Route("/orders/{order_id}", _endpoint((), _order), methods=["GET"]),
        Route(
            "/trades",
            _endpoint((*NAMES, "limit", "after"), _paged("trades", queries.trades)),
            methods=["GET"],
        ),
    ]
