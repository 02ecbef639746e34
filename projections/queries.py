"""Reading the read models: filters, cursors, and positions as of a past sequence."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application
from psycopg.sql import SQL, Composable

from projections.runner import PLACED_TOPIC
from projections.views import LedgerView, PlacedOrder

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Filters:
    """What a reader asked for; None means any."""

    user: str | None = None
    strategy: str | None = None
    instrument: str | None = None
    status: str | None = None


def _iso(value: Any) -> str:
    return str(value.isoformat())


def _where(conditions: list[Composable]) -> Composable:
    return SQL(" WHERE ") + SQL(" AND ").join(conditions) if conditions else SQL("")


def order_object(row: dict[str, Any]) -> dict[str, Any]:
    """An order-log row shaped like the POST answer, plus received_at."""
    return {
        "RESPONSE": row["response"],
        "order_id": row["order_id"],
        "sequence": row["sequence"],
        "strategy": row["strategy"],
        "instrument": row["instrument"],
        "position": row["position"],
        "accepted_for": row["accepted_for"],
        "rejected_for": row["rejected_for"],
        "reason": row["reason"],
        "received_at": _iso(row["received_at"]),
    }


def positions(view: LedgerView, filters: Filters) -> list[dict[str, Any]]:
    """Open positions, in (user, strategy, instrument) order."""
    conditions: list[Composable] = []
    params: list[Any] = []
    for column, value in (
        ("user_name", filters.user),
        ("strategy", filters.strategy),
        ("instrument", filters.instrument),
    ):
        if value is not None:
            conditions.append(SQL(column + " = %s"))
            params.append(value)
    statement = (
        SQL("SELECT * FROM {0}").format(view.tables["positions"])
        + _where(conditions)
        + SQL(" ORDER BY user_name, strategy, instrument")
    )
    return [
        {
            "user": row["user_name"],
            "strategy": row["strategy"],
            "instrument": row["instrument"],
            "order_id": row["order_id"],
            "opened_at": _iso(row["opened_at"]),
        }
        for row in view.query(statement, params)
    ]


def orders(
    view: LedgerView, filters: Filters, limit: int, after: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the order log in sequence order, and the cursor of the next page."""
    conditions: list[Composable] = []
    params: list[Any] = []
    if filters.user is not None:
        conditions.append(SQL("users @> ARRAY[%s]::text[]"))
        params.append(filters.user)
    for column, value in (
        ("strategy", filters.strategy),
        ("instrument", filters.instrument),
        ("response", filters.status),
    ):
        if value is not None:
            conditions.append(SQL(column + " = %s"))
            params.append(value)
    if after is not None:
        conditions.append(SQL("sequence > %s"))
        params.append(after)
    statement = (
        SQL("SELECT * FROM {0}").format(view.tables["orders"])
        + _where(conditions)
        + SQL(" ORDER BY sequence LIMIT %s")
    )
    rows = view.query(statement, [*params, limit + 1])
    page = [order_object(row) for row in rows[:limit]]
    more = len(rows) > limit
    return page, (str(page[-1]["sequence"]) if more else None)


def order(view: LedgerView, order_id: str) -> dict[str, Any] | None:
    """One order of the log, or None."""
    statement = SQL("SELECT * FROM {0} WHERE order_id = %s").format(view.tables["orders"])
    rows = view.query(statement, [order_id])
    return order_object(rows[0]) if rows else None


def trades(
    view: LedgerView, filters: Filters, limit: int, after: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of closed trades in the order they closed, and the next page's cursor."""
    conditions: list[Composable] = []
    params: list[Any] = []
    for column, value in (
        ("user_name", filters.user),
        ("strategy", filters.strategy),
        ("instrument", filters.instrument),
    ):
        if value is not None:
            conditions.append(SQL(column + " = %s"))
            params.append(value)
    if after is not None:
        conditions.append(SQL("id > %s"))
        params.append(after)
    statement = (
        SQL("SELECT * FROM {0}").format(view.tables["trades"])
        + _where(conditions)
        + SQL(" ORDER BY id LIMIT %s")
    )
    rows = view.query(statement, [*params, limit + 1])
    page = [
        {
            "user": row["user_name"],
            "strategy": row["strategy"],
            "instrument": row["instrument"],
            "buy_order_id": row["buy_order_id"],
            "sell_order_id": row["sell_order_id"],
            "opened_at": _iso(row["opened_at"]),
            "closed_at": _iso(row["closed_at"]),
        }
        for row in rows[:limit]
    ]
    more = len(rows) > limit
    return page, (str(rows[limit - 1]["id"]) if more else None)


def placed_orders(app: Application[Any], stop: int, batch: int = 5000) -> Iterator[PlacedOrder]:
    """Every Order.Placed event up to sequence `stop`, from the event store."""
    position = 0
    while position < stop:
        notifications = app.recorder.select_notifications(
            start=position, limit=batch, stop=stop, topics=[PLACED_TOPIC], inclusive_of_start=False
        )
        if not notifications:
            return
        for n in notifications:
            yield PlacedOrder.from_event(app.mapper.to_domain_event(n), n.id)
        position = notifications[-1].id


def positions_as_of(app: Application[Any], sequence: int, filters: Filters) -> list[dict[str, Any]]:
    """The open positions right after `sequence`, folded from the stored events."""
    open_: dict[tuple[str, str, str], tuple[str, Any]] = {}
    for placed in placed_orders(app, sequence):
        for user in placed.accepted_for:
            key = (user, placed.strategy, placed.instrument)
            if placed.position == "BUY":
                open_[key] = (placed.order_id, placed.received_at)
            else:
                open_.pop(key, None)
    wanted = (filters.user, filters.strategy, filters.instrument)
    return [
        {
            "user": user,
            "strategy": strategy,
            "instrument": instrument,
            "order_id": order_id,
            "opened_at": _iso(opened_at),
        }
        for (user, strategy, instrument), (order_id, opened_at) in sorted(open_.items())
        if all(
            w is None or w == v for w, v in zip(wanted, (user, strategy, instrument), strict=True)
        )
    ]
