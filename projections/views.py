"""The read models in PostgreSQL: the order log, open positions and closed trades."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier

from ledger import faults
from ledger.domain import Outcome, Position
from ledger.overrides.storage import insert_tracking
from projections import roster
from projections.fold import Key, Opened, PlacedOrder, fold

TABLES = ("orders", "positions", "trades")
READ_STATEMENT_TIMEOUT_MS = 5000  # a read's statements give up here even if nobody cancels them
UNIT_SEPARATOR = "\x1f"  # joins user names for one array column; never in a valid name
# Most decisions (users an order was booked or refused for) written in one view transaction,
# always at least one order: keeps a transaction's memory and time bounded at any fan-out.
DECISION_BUDGET = 200_000


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column, for unnest()."""
    return [[row[n] for row in rows] for n in range(width)] if rows else [[]] * width


def decisions(order: PlacedOrder) -> int:
    """How many users an order was decided for: what its share of a view write costs."""
    return len(order.accepted_for) + len(order.rejected_for)


# Stands for a position opened before the batch: the table holds its BUY.
_BEFORE = Opened("", datetime.min.replace(tzinfo=UTC), 0)


@dataclass(frozen=True, slots=True)
class Writes:
    """A batch's statement parameters, folded and encoded before its transaction opens."""

    trades: list[list[Any]] | None
    positions: list[list[Any]] | None
    orders: tuple[Any, ...]

    @classmethod
    def of(cls, orders: Sequence[PlacedOrder]) -> Writes:
        """Fold the orders in sequence order and encode every row they write."""
        # A position the batch closes before opening it was opened earlier, and is in the
        # table: it enters the fold as _BEFORE and the closing statement fetches its BUY.
        first: dict[Key, bool] = {}
        for order in orders:
            buy = order.position == Position.BUY
            for user in order.accepted_for:
                first.setdefault((user, order.strategy, order.instrument), buy)
        open_: dict[Key, Opened] = {key: _BEFORE for key, buy in first.items() if not buy}
        closed = fold(orders, open_)
        trade_rows = [
            (*c.key, None, c.sell.order_id, None, c.sell.at, None, c.sell.sequence)
            if c.buy is _BEFORE
            else (*c.key, c.buy.order_id, c.sell.order_id, c.buy.at, c.sell.at, *c.sequences)
            for c in closed
        ]
        open_rows = [(*key, o.order_id, o.at, o.sequence) for key, o in open_.items()]
        return cls(
            _columns(trade_rows, 9) if trade_rows else None,
            _columns(open_rows, 6) if open_rows else None,
            (
                UNIT_SEPARATOR,
                [o.sequence for o in orders],
                [o.order_id for o in orders],
                [o.strategy for o in orders],
                [o.instrument for o in orders],
                [o.position for o in orders],
                [o.received_at for o in orders],
                [Outcome.of(o.accepted_for).value for o in orders],
                [orjson.dumps(o.accepted_for).decode() for o in orders],
                [orjson.dumps(o.rejected_for).decode() for o in orders],
                [o.reason for o in orders],
                [
                    UNIT_SEPARATOR.join(o.accepted_for + [r["user"] for r in o.rejected_for])
                    for o in orders
                ],
            ),
        )


class ReadCancelled(Exception):
    """The reader went away (disconnected, or answered 503): the read stopped."""


class Cancellation:
    """Lets the event loop stop a read running in a worker thread, and its SQL statement."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()  # a cancel reaches only the statement of this read
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def cancelled(self) -> bool:
        """Whether the read was abandoned."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise ReadCancelled if the read was abandoned."""
        if self._event.is_set():
            raise ReadCancelled

    def cancel(self) -> None:
        """Abandon the read; its running statement is cancelled off the caller's thread."""
        self._event.set()
        # cancel_safe blocks on the network: never on the event loop.
        threading.Thread(target=self._cancel_statement, daemon=True).start()

    def _cancel_statement(self) -> None:
        with self._lock:
            if self._conn is not None:
                # On failure the statement still ends at its statement_timeout.
                with contextlib.suppress(psycopg.Error):
                    self._conn.cancel_safe(timeout=2)

    @contextlib.contextmanager
    def watching(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """While inside, cancel() cancels what `conn` runs; outside, conn is left alone."""
        with self._lock:
            self.check()
            self._conn = conn
        try:
            yield
        finally:
            with self._lock:  # the pool may hand conn to another read once we return it
                self._conn = None


class LedgerView(PostgresTrackingRecorder):
    """The three read tables; each update is written with its tracking record."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        schema = self.datastore.schema
        self.tables: dict[str, Composable] = {
            name: SQL("{0}.{1}").format(Identifier(schema), Identifier(f"view_{name}"))
            for name in TABLES
        }
        t = self.tables
        self.sql_create_statements.extend(
            SQL(statement).format(orders=t["orders"], positions=t["positions"], trades=t["trades"])
            for statement in (
                "CREATE TABLE IF NOT EXISTS {orders} ("
                " sequence bigint PRIMARY KEY, order_id text NOT NULL UNIQUE,"
                " strategy text NOT NULL, instrument text NOT NULL, position text NOT NULL,"
                " received_at timestamptz NOT NULL, response text NOT NULL,"
                " accepted_for jsonb NOT NULL, rejected_for jsonb NOT NULL, reason text,"
                " users text[] NOT NULL)",
                "CREATE INDEX IF NOT EXISTS view_orders_strategy ON {orders} (strategy, sequence)",
                "CREATE INDEX IF NOT EXISTS view_orders_instr ON {orders} (instrument, sequence)",
                "CREATE INDEX IF NOT EXISTS view_orders_users ON {orders} USING gin (users)",
                "CREATE TABLE IF NOT EXISTS {positions} ("
                " user_name text NOT NULL, strategy text NOT NULL, instrument text NOT NULL,"
                " order_id text NOT NULL, opened_at timestamptz NOT NULL,"
                " sequence bigint NOT NULL, PRIMARY KEY (user_name, strategy, instrument))",
                "CREATE TABLE IF NOT EXISTS {trades} ("
                " id bigserial PRIMARY KEY, user_name text NOT NULL, strategy text NOT NULL,"
                " instrument text NOT NULL, buy_order_id text NOT NULL,"
                " sell_order_id text NOT NULL, opened_at timestamptz NOT NULL,"
                " closed_at timestamptz NOT NULL, buy_sequence bigint NOT NULL,"
                " sell_sequence bigint NOT NULL)",
                "CREATE INDEX IF NOT EXISTS view_trades_user ON {trades} (user_name, id)",
            )
        )
        self.sql_create_statements.extend(roster.create_statements(schema, t["positions"]))
        self.books = roster.table(schema)
        self._upsert_books = roster.upsert(schema)
        # Set-based statements: a batch of any size costs the same few round trips.
        self._insert_orders = SQL(
            "INSERT INTO {0} (sequence, order_id, strategy, instrument, position, received_at,"
            " response, accepted_for, rejected_for, reason, users)"
            " SELECT s, o, st, i, p, r, resp, a::jsonb, rj::jsonb, re, string_to_array(u, %b)"
            " FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[],"
            " %b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[])"
            " AS t(s, o, st, i, p, r, resp, a, rj, re, u)"
        ).format(t["orders"])
        # A batch's trades, in fold order. A trade whose BUY came before the batch has no
        # BUY columns: its open position is taken out of the table and completes it.
        self._close_positions = SQL(
            "WITH t AS MATERIALIZED (SELECT * FROM unnest(%b::text[], %b::text[], %b::text[],"
            " %b::text[], %b::text[], %b::timestamptz[], %b::timestamptz[], %b::bigint[],"
            " %b::bigint[]) WITH ORDINALITY AS t(u, s, i, b, x, o, c, bs, ss, n)),"
            " gone AS (DELETE FROM {0} AS p USING t WHERE t.b IS NULL AND p.user_name = t.u"
            " AND p.strategy = t.s AND p.instrument = t.i"
            " RETURNING p.user_name, p.strategy, p.instrument, p.order_id, p.opened_at,"
            " p.sequence)"
            " INSERT INTO {1} (user_name, strategy, instrument, buy_order_id, sell_order_id,"
            " opened_at, closed_at, buy_sequence, sell_sequence)"
            " SELECT t.u, t.s, t.i, coalesce(t.b, g.order_id), t.x, coalesce(t.o, g.opened_at),"
            " t.c, coalesce(t.bs, g.sequence), t.ss FROM t LEFT JOIN gone AS g ON t.b IS NULL"
            " AND g.user_name = t.u AND g.strategy = t.s AND g.instrument = t.i ORDER BY t.n"
        ).format(t["positions"], t["trades"])
        self._open_positions = SQL(
            "INSERT INTO {0} (user_name, strategy, instrument, order_id, opened_at, sequence)"
            " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[],"
            " %b::timestamptz[], %b::bigint[])"
        ).format(t["positions"])

    def apply(
        self,
        orders: Sequence[PlacedOrder],
        tracking: Tracking,
        books: roster.BookRows | None = None,
    ) -> None:
        """Apply orders (and book changes) in sequence order, and the position read, at once."""
        # Folding and encoding run before the transaction opens: PostgreSQL ends a session
        # left idle in a transaction (5 s), and a batch's Python work grows with its fan-out.
        writes = Writes.of(orders) if orders else None
        with self.datastore.transaction(commit=True) as curs:
            if books:
                roster.write(curs, self._upsert_books, books)
            if writes is not None:
                self._apply(curs, writes)
                faults.hit("projection_batch")  # written, not yet committed
            insert_tracking(self, curs, tracking)

    def _apply(self, curs: Cursor[DictRow], writes: Writes) -> None:
        # Only statements here, each with its parameters ready.
        if writes.trades is not None:
            curs.execute(self._close_positions, writes.trades, prepare=True)
        if writes.positions is not None:
            curs.execute(self._open_positions, writes.positions, prepare=True)
        curs.execute(self._insert_orders, writes.orders, prepare=True)

    def reset(self, application_name: str) -> None:
        """Empty the read tables and forget the tracking position (for a replay)."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL("TRUNCATE {0}, {1}, {2}, {3} RESTART IDENTITY").format(
                    *(self.tables[name] for name in TABLES), self.books
                )
            )
            curs.execute(
                SQL("DELETE FROM {0}.{1} WHERE application_name = %s").format(
                    Identifier(self.datastore.schema), Identifier(self.tracking_table_name)
                ),
                (application_name,),
            )

    def query(
        self,
        statement: Composed,
        params: Sequence[Any],
        cancellation: Cancellation | None = None,
    ) -> list[dict[str, Any]]:
        """Run a read query and return its rows; a cancellation stops it."""
        with self.reading(statement, params, cancellation) as curs:
            return [dict(row) for row in curs.fetchall()]

    @contextlib.contextmanager
    def reading(
        self,
        statement: Composed,
        params: Sequence[Any],
        cancellation: Cancellation | None = None,
    ) -> Iterator[psycopg.ServerCursor[DictRow]]:
        """A server-side cursor over a read: rows come as fetched, and the read is bounded.

        Its statements stop at READ_STATEMENT_TIMEOUT_MS, or when `cancellation` is cancelled
        (ReadCancelled); a statement timeout is a TimeoutError.
        """
        cancellation = cancellation or Cancellation()
        with self.datastore.get_connection() as conn, cancellation.watching(conn):
            try:
                with conn.transaction(force_rollback=True):
                    conn.execute(f"SET LOCAL statement_timeout = {READ_STATEMENT_TIMEOUT_MS}")
                    with conn.cursor(name="ledger_read") as curs:
                        curs.execute(statement, params)
                        yield curs
            except psycopg.errors.QueryCanceled as stopped:
                if cancellation.cancelled:
                    raise ReadCancelled from stopped
                msg = f"a read ran over {READ_STATEMENT_TIMEOUT_MS} ms"
                raise TimeoutError(msg) from stopped
