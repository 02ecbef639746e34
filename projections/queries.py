"""Reading the read models: filters, cursors, and positions as of a past sequence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application
from psycopg.sql import SQL, Composable

from ledger.answers import LoggedOrder, OpenPosition, OrdersPage, Positions, Trade, TradesPage
from ledger.domain import Outcome, Position, Reason
from projections.fold import Key, Opened, fold
from projections.replay import placed_pages
from projections.views import LedgerView

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Filters:
    """What a reader asked for; None means any."""

    user: str | None = None
    strategy: str | None = None
    instrument: str | None = None
    status: Outcome | None = None

    def matches(self, key: Key) -> bool:
        """Whether a (user, strategy, instrument) passes the filters."""
        wanted = (self.user, self.strategy, self.instrument)
        return all(w is None or w == v for w, v in zip(wanted, key, strict=True))


def _where(conditions: list[Composable]) -> Composable:
    return SQL(" WHERE ") + SQL(" AND ").join(conditions) if conditions else SQL("")


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


def _key(row: dict[str, Any]) -> Key:
    return row["user_name"], row["strategy"], row["instrument"]


def logged_order(row: dict[str, Any]) -> LoggedOrder:
    """An order-log row as the POST answer, plus received_at."""
    return LoggedOrder(
        RESPONSE=Outcome(row["response"]),
        order_id=row["order_id"],
        sequence=row["sequence"],
        strategy=row["strategy"],
        instrument=row["instrument"],
        position=Position(row["position"]),
        accepted_for=row["accepted_for"],
        rejected_for=row["rejected_for"],
        reason=Reason(row["reason"]) if row["reason"] else None,
        received_at=row["received_at"],
    )


def positions(view: LedgerView, filters: Filters) -> Positions:
    """Open positions, in (user, strategy, instrument) order."""
    conditions, params = _equal(_book_filters(filters))
    statement = (
        SQL("SELECT * FROM {0}").format(view.tables["positions"])
        + _where(conditions)
        + SQL(" ORDER BY user_name, strategy, instrument")
    )
    return Positions(
        [
            OpenPosition(
                r["user_name"], r["strategy"], r["instrument"], r["order_id"], r["opened_at"]
            )
            for r in view.query(statement, params)
        ]
    )


def orders(view: LedgerView, filters: Filters, limit: int, after: int | None) -> OrdersPage:
    """A page of the order log in sequence order, and the cursor of the next page."""
    conditions, params = _equal(
        (
            ("strategy", filters.strategy),
            ("instrument", filters.instrument),
            ("response", filters.status.value if filters.status else None),
        )
    )
    if filters.user is not None:  # booked or rejected for the user
        conditions.append(SQL("users @> ARRAY[%s]::text[]"))
        params.append(filters.user)
    rows, cursor = _page(view, "orders", "sequence", (conditions, params), limit, after)
    return OrdersPage([logged_order(row) for row in rows], cursor)


def order(view: LedgerView, order_id: str) -> LoggedOrder | None:
    """One order of the log, or None."""
    statement = SQL("SELECT * FROM {0} WHERE order_id = %s").format(view.tables["orders"])
    rows = view.query(statement, [order_id])
    return logged_order(rows[0]) if rows else None


def trades(view: LedgerView, filters: Filters, limit: int, after: int | None) -> TradesPage:
    """A page of closed trades in the order they closed, and the next page's cursor."""
    rows, cursor = _page(view, "trades", "id", _equal(_book_filters(filters)), limit, after)
    return TradesPage(
        [
            Trade(
                *_key(r),
                r["buy_order_id"],
                r["sell_order_id"],
                r["opened_at"],
                r["closed_at"],
            )
            for r in rows
        ],
        cursor,
    )


def positions_as_of(app: Application[Any], sequence: int, filters: Filters) -> Positions:
    """The open positions right after `sequence`, folded from the stored events."""
    open_: dict[Key, Opened] = {}
    for page in placed_pages(app, sequence, 5000):
        fold(page, open_)
    return Positions(
        [
            OpenPosition(*key, opened.order_id, opened.at)
            for key, opened in sorted(open_.items())
            if filters.matches(key)
        ]
    )
