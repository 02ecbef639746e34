"""Reading the read models: filters, cursors, and positions as of a past sequence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application
from psycopg.sql import SQL, Composable

from projections.runner import placed_pages
from projections.views import LedgerView

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


def _equal(pairs: tuple[tuple[str, str | None], ...]) -> tuple[list[Composable], list[Any]]:
    """`column = value` conditions for the filters that were given."""
    given = [(column, value) for column, value in pairs if value is not None]
    return [SQL(column + " = %s") for column, _ in given], [value for _, value in given]


def _book_filters(filters: Filters) -> tuple[tuple[str, str | None], ...]:
    return (
        ("user_name", filters.user),
        ("strategy", filters.strategy),
        ("instrument", filters.instrument),
    )


def _page(
    view: LedgerView,
    table: str,
    key: str,
    where: tuple[list[Composable], list[Any]],
    limit: int,
    after: int | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Rows in `key` order after the cursor, and the next cursor when there are more."""
    conditions, params = where
    if after is not None:
        conditions = [*conditions, SQL(key + " > %s")]
        params = [*params, after]
    statement = (
        SQL("SELECT * FROM {0}").format(view.tables[table])
        + _where(conditions)
        + SQL(" ORDER BY " + key + " LIMIT %s")
    )
    rows = view.query(statement, [*params, limit + 1])
    more = len(rows) > limit
    return rows[:limit], (str(rows[limit - 1][key]) if more else None)


def _shown(row: dict[str, Any], *names: str) -> dict[str, Any]:
    shown = {"user": row["user_name"], "strategy": row["strategy"], "instrument": row["instrument"]}
    for name in names:
        shown[name] = _iso(row[name]) if name.endswith("_at") else row[name]
    return shown


def positions(view: LedgerView, filters: Filters) -> list[dict[str, Any]]:
    """Open positions, in (user, strategy, instrument) order."""
    conditions, params = _equal(
        (
            ("user_name", filters.user),
            ("strategy", filters.strategy),
            ("instrument", filters.instrument),
        )
    )
    statement = (
        SQL("SELECT * FROM {0}").format(view.tables["positions"])
        + _where(conditions)
        + SQL(" ORDER BY user_name, strategy, instrument")
    )
    return [_shown(row, "order_id", "opened_at") for row in view.query(statement, params)]


def orders(
    view: LedgerView, filters: Filters, limit: int, after: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the order log in sequence order, and the cursor of the next page."""
    conditions, params = _equal(
        (
            ("strategy", filters.strategy),
            ("instrument", filters.instrument),
            ("response", filters.status),
        )
    )
    if filters.user is not None:  # booked or rejected for the user
        conditions.append(SQL("users @> ARRAY[%s]::text[]"))
        params.append(filters.user)
    rows, cursor = _page(view, "orders", "sequence", (conditions, params), limit, after)
    return [order_object(row) for row in rows], cursor


def order(view: LedgerView, order_id: str) -> dict[str, Any] | None:
    """One order of the log, or None."""
    statement = SQL("SELECT * FROM {0} WHERE order_id = %s").format(view.tables["orders"])
    rows = view.query(statement, [order_id])
    return order_object(rows[0]) if rows else None


def trades(
    view: LedgerView, filters: Filters, limit: int, after: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of closed trades in the order they closed, and the next page's cursor."""
    where = _equal(
        (
            ("user_name", filters.user),
            ("strategy", filters.strategy),
            ("instrument", filters.instrument),
        )
    )
    rows, cursor = _page(view, "trades", "id", where, limit, after)
    names = ("buy_order_id", "sell_order_id", "opened_at", "closed_at")
    return [_shown(row, *names) for row in rows], cursor


def positions_as_of(app: Application[Any], sequence: int, filters: Filters) -> list[dict[str, Any]]:
    """The open positions right after `sequence`, folded from the stored events."""
    open_: dict[tuple[str, str, str], tuple[str, Any]] = {}
    for placed in (order for page in placed_pages(app, sequence, 5000) for order in page):
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
