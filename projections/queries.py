"""Reading the read models: filters, cursors, pages, and positions as of a past sequence."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from psycopg.sql import SQL, Composable

from ledger.answers import (
    LoggedOrder,
    OpenPosition,
    OrdersPage,
    Positions,
    Trade,
    TradesPage,
)
from ledger.domain import Outcome, Position, Reason
from ledger.names import valid_name
from projections.fold import Key, text
from projections.views import Cancellation, LedgerView

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
DEFAULT_POSITIONS = 1000
MAX_POSITIONS = 10_000  # positions are small: a page of them is ~2 MB of JSON
PAGE_BYTES = 4 * 1024 * 1024  # an order page stops before this size (it holds one order at least)
FIRST_FETCH = 8  # rows of the first fetch of a page, before their size is known
FETCH_BYTES = 512 * 1024  # about this much of a page is fetched at once


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


def where_clause(conditions: list[Composable]) -> Composable:
    return SQL(" WHERE ") + SQL(" AND ").join(conditions) if conditions else SQL("")


def equal(pairs: tuple[tuple[str, str | None], ...]) -> tuple[list[Composable], list[Any]]:
    """`column = value` conditions for the filters that were given."""
    given = [(column, value) for column, value in pairs if value is not None]
    return [SQL(column + " = %s") for column, _ in given], [value for _, value in given]


def book_filters(filters: Filters) -> tuple[tuple[str, str | None], ...]:
    return (
        ("user_name", filters.user),
        ("strategy", filters.strategy),
        ("instrument", filters.instrument),
    )


def _direction(key: str, newest_first: bool) -> tuple[Composable, Composable]:
    """The cursor's condition and the ORDER BY of a page, oldest or newest first."""
    if newest_first:  # the cursor pages backwards: rows before it
        return SQL(key + " < %s"), SQL(" ORDER BY " + key + " DESC LIMIT %s")
    return SQL(key + " > %s"), SQL(" ORDER BY " + key + " LIMIT %s")


def _page(
    view: LedgerView,
    table: str,
    key: str,
    where: tuple[list[Composable], list[Any]],
    limit: int,
    after: int | None,
    cancellation: Cancellation | None = None,
    newest_first: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """Rows in `key` order after the cursor (before it, newest first), and the next cursor
    when there are more."""
    conditions, params = where
    beyond, order_by = _direction(key, newest_first)
    if after is not None:
        conditions = [*conditions, beyond]
        params = [*params, after]
    statement = (
        SQL("SELECT * FROM {0}").format(view.tables[table]) + where_clause(conditions) + order_by
    )
    rows = view.query(statement, [*params, limit + 1], cancellation)
    more = len(rows) > limit
    return rows[:limit], (str(rows[limit - 1][key]) if more else None)


def _text(value: Decimal) -> str:
    """A decimal that is never null, in the ledger's spelling."""
    return text(value) or "0"


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
        quantity=row["quantity"],
        price=row["price"],
        received_at=row["received_at"],
    )


def position_cursor(key: Key) -> str:
    """The `next` cursor after a position: its key, opaque to clients (URL-safe base64 of
    JSON)."""
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def position_key(cursor: str) -> Key:
    """The key a position cursor stands for; ValueError if it is not one this API gave."""
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise ValueError("not a cursor this API gave") from None
    # Names by the one rule: a tampered key (a NUL, say) must not reach the database.
    if not (isinstance(key, list) and len(key) == 3 and all(valid_name(k) for k in key)):
        raise ValueError("not a cursor this API gave")
    return key[0], key[1], key[2]


# The positions open right after sequence %s: those still open that were opened by then, and
# those closed since (their trades) that were. A SELL closes a position whole, so a trade
# holds all its position was. One statement: one moment of both tables, whichever page.
_OPEN_AS_OF = (
    "(SELECT user_name, strategy, instrument, order_id, opened_at, quantity, entry_price"
    " FROM {positions} WHERE sequence <= %s UNION ALL"
    " SELECT user_name, strategy, instrument, buy_order_id, opened_at, quantity, entry_price"
    " FROM {trades} WHERE sell_sequence > %s AND buy_sequence <= %s) AS p"
)


def positions(
    view: LedgerView,
    filters: Filters,
    limit: int = MAX_POSITIONS,
    after: Key | None = None,
    cancellation: Cancellation | None = None,
    as_of: int | None = None,
) -> Positions:
    """A page of open positions in (user, strategy, instrument) order, and the next cursor;
    those open right after sequence `as_of` when given (the read tables must hold it)."""
    conditions, params = equal(book_filters(filters))
    if after is not None:  # the primary key's order: the page is an index range
        conditions.append(SQL("(user_name, strategy, instrument) > (%s, %s, %s)"))
        params.extend(after)
    if as_of is None:
        source, before = SQL("{0}").format(view.tables["positions"]), []
    else:  # the filters and the cursor reach into both halves (PostgreSQL pushes them down)
        source, before = SQL(_OPEN_AS_OF).format(**view.tables), [as_of] * 3
    statement = (
        SQL("SELECT * FROM ")
        + source
        + where_clause(conditions)
        + SQL(" ORDER BY user_name, strategy, instrument LIMIT %s")
    )
    rows = view.query(statement, [*before, *params, limit + 1], cancellation)
    page = [
        OpenPosition(
            *_key(r),
            r["order_id"],
            r["opened_at"],
            _text(r["quantity"]),
            text(r["entry_price"]),
        )
        for r in rows[:limit]
    ]
    return Positions(page, position_cursor(_key(rows[limit - 1])) if len(rows) > limit else None)


def orders(
    view: LedgerView, filters: Filters, limit: int, after: int | None, newest_first: bool = False
) -> OrdersPage:
    """A page of the order log in sequence order (or newest first), and the next cursor."""
    where = _order_conditions(filters)
    rows, cursor = _page(view, "orders", "sequence", where, limit, after, None, newest_first)
    return OrdersPage([logged_order(row) for row in rows], cursor)


# The decision lists are selected as JSON text and spliced into the answer (orjson.Fragment):
# a 10,000-user order is never decoded into Python objects and encoded again.
_ORDER_JSON_COLUMNS = SQL(
    "SELECT sequence, order_id, strategy, instrument, position, received_at, response,"
    " accepted_for::text AS accepted_for, rejected_for::text AS rejected_for, reason, quantity,"
    " price FROM {0}"
)


def _order_json(row: dict[str, Any]) -> bytes:
    """One order-log row as LoggedOrder's JSON, its decision lists passed through as text."""
    return orjson.dumps(
        {
            "RESPONSE": row["response"],
            "order_id": row["order_id"],
            "sequence": row["sequence"],
            "strategy": row["strategy"],
            "instrument": row["instrument"],
            "position": row["position"],
            "accepted_for": orjson.Fragment(row["accepted_for"]),
            "rejected_for": orjson.Fragment(row["rejected_for"]),
            "reason": row["reason"] or None,
            "quantity": row["quantity"],
            "price": row["price"],
            "received_at": row["received_at"],
        }
    )


def _order_conditions(filters: Filters) -> tuple[list[Composable], list[Any]]:
    conditions, params = equal(
        (
            ("strategy", filters.strategy),
            ("instrument", filters.instrument),
            ("response", filters.status.value if filters.status else None),
        )
    )
    if filters.user is not None:  # booked or rejected for the user
        conditions.append(SQL("users @> ARRAY[%s]::text[]"))
        params.append(filters.user)
    return conditions, params


def orders_json(
    view: LedgerView,
    filters: Filters,
    limit: int,
    after: int | None,
    cancellation: Cancellation | None = None,
    newest_first: bool = False,
) -> list[bytes]:
    """A page of the order log as OrdersPage's JSON, in pieces: at most `limit` orders and
    PAGE_BYTES (one order at least). Newest first, `after` is the cursor of a backward walk.

    Rows come from a server-side cursor about FETCH_BYTES at a time and are encoded as they
    come; the pieces are sent as they are, never joined. A cancelled read stops at the next row.
    """
    cancellation = cancellation or Cancellation()
    conditions, params = _order_conditions(filters)
    beyond, order_by = _direction("sequence", newest_first)
    if after is not None:
        conditions.append(beyond)
        params.append(after)
    statement = (
        _ORDER_JSON_COLUMNS.format(view.tables["orders"]) + where_clause(conditions) + order_by
    )
    budget = PAGE_BYTES
    parts: list[bytes] = [b'{"orders":[']
    size = 0
    last = 0
    cursor: str | None = None
    with view.reading(statement, [*params, limit + 1], cancellation) as rows:
        fetch = min(limit + 1, FIRST_FETCH)
        while cursor is None and (chunk := rows.fetchmany(fetch)):
            for row in chunk:
                cancellation.check()
                encoded = _order_json(row)
                count = len(parts) - 1
                if count == limit or (count and size + len(encoded) + 1 > budget):
                    cursor = str(last)  # this row exists: there is a next page
                    break
                parts.append(b"," + encoded if count else encoded)
                size += len(encoded) + 1
                last = row["sequence"]
            # About FETCH_BYTES of rows by the size of those so far: a fetch is held while
            # it is encoded.
            count = len(parts) - 1
            fetch = max(1, min(limit + 1 - count, FETCH_BYTES * count // max(1, size)))
    parts.append(b'],"next":' + orjson.dumps(cursor) + b"}")
    return parts


def order_json(
    view: LedgerView, order_id: str, cancellation: Cancellation | None = None
) -> bytes | None:
    """One order of the log as LoggedOrder's JSON, or None."""
    statement = _ORDER_JSON_COLUMNS.format(view.tables["orders"]) + SQL(" WHERE order_id = %s")
    rows = view.query(statement, [order_id], cancellation)
    return _order_json(rows[0]) if rows else None


def order(view: LedgerView, order_id: str) -> LoggedOrder | None:
    """One order of the log, or None."""
    statement = SQL("SELECT * FROM {0} WHERE order_id = %s").format(view.tables["orders"])
    rows = view.query(statement, [order_id])
    return logged_order(rows[0]) if rows else None


def trades(
    view: LedgerView,
    filters: Filters,
    limit: int,
    after: int | None,
    cancellation: Cancellation | None = None,
    newest_first: bool = False,
) -> TradesPage:
    """A page of closed trades in the order they closed (or newest first), and the next
    page's cursor."""
    where = equal(book_filters(filters))
    rows, cursor = _page(view, "trades", "id", where, limit, after, cancellation, newest_first)
    return TradesPage(
        [
            Trade(
                r["id"],
                *_key(r),
                r["buy_order_id"],
                r["sell_order_id"],
                r["opened_at"],
                r["closed_at"],
                _text(r["quantity"]),
                text(r["entry_price"]),
                text(r["exit_price"]),
                text(r["realised_pnl"]),
            )
            for r in rows
        ],
        cursor,
    )
