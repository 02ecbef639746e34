"""The read models in PostgreSQL: the order log, open positions and closed trades."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier

from ledger import faults
from ledger.overrides.storage import insert_tracking
from ledger.store.schema import OneCreatorAtATime
from projections import roster, writes
from projections.fold import PlacedOrder
from projections.writes import Writes

TABLES = ("orders", "positions", "trades")
READ_STATEMENT_TIMEOUT_MS = 5000  # a read's statements give up here even if nobody cancels them
# Most decisions (users an order was booked or refused for) written in one view transaction,
# always at least one order: keeps a transaction's memory and time bounded at any fan-out.
DECISION_BUDGET = 200_000
ASYNC_COMMIT = b"SET LOCAL synchronous_commit = off"  # for this transaction only
# The batch function's column parameters of a write with no rows.
NO_TRADES, NO_POSITIONS, NO_ORDERS = ([None] * width for width in writes.WIDTHS.values())


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


class LedgerView(OneCreatorAtATime, PostgresTrackingRecorder):
    """The three read tables; each update is written with its tracking record."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        schema = self.datastore.schema
        self.tables: dict[str, Composable] = {
            name: SQL("{0}.{1}").format(Identifier(schema), Identifier(f"view_{name}"))
            for name in TABLES
        }
        t = self.tables
        self.sql_create_statements.extend(writes.statements(t, *writes.CREATE))
        self._create_indexes = writes.index_statements(t)
        self.sql_create_statements.extend(self._create_indexes)
        self.sql_create_statements.extend(roster.create_statements(schema, t["positions"]))
        self.books = roster.table(schema)
        self._upsert_books = roster.upsert(schema)
        # Rendered to bytes once: psycopg renders a Composed statement again on every execute
        # (identifiers escaped, parts joined): 10% of the projector's py-spy samples under the
        # 21 x 4 load, though its CPU per order moved within the noise (a few %).
        self._insert_orders, self._close_positions, self._open_positions = (
            statement.as_bytes(None)
            for statement in writes.statements(
                t, writes.INSERT_ORDERS, writes.CLOSE_POSITIONS, writes.OPEN_POSITIONS
            )
        )
        function = SQL("{0}.{1}").format(Identifier(schema), Identifier("view_apply"))
        tracking_table = SQL("{0}.{1}").format(
            Identifier(schema), Identifier(self.tracking_table_name)
        )
        create, call = writes.apply_function(t, function, tracking_table)
        self.sql_create_statements.append(create)
        self._apply_call = call.as_bytes(None)

    def apply(
        self,
        orders: Sequence[PlacedOrder],
        tracking: Tracking,
        books: roster.BookRows | None = None,
    ) -> None:
        """Apply orders (and book changes) in sequence order, and the position read, at once."""
        # Folding and encoding run before the transaction opens: PostgreSQL ends a session
        # left idle in a transaction (5 s), and a batch's Python work grows with its fan-out.
        self.write(Writes.of(orders) if orders else None, tracking, books)

    def write(
        self, batch: Writes | None, tracking: Tracking, books: roster.BookRows | None = None
    ) -> None:
        """Write a batch folded beforehand (and book changes) with its tracking record."""
        # The read models are rebuilt from the events: a batch lost in a crash of PostgreSQL
        # goes with its tracking record and is projected again. So its commit does not wait
        # for the disk, and the writers' commits, whose answers do, no longer queue behind its
        # WAL flush: five alternating A/B pairs of 21 x 4, orders/s +2% to +16% (mean +8%),
        # p99 lower in all five, writer commits -7-12%.
        if not books and self.datastore.single_row_tracking:
            faults.hit("projection_batch")  # folded, nothing written
            self.call_apply(batch, tracking)
            return
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(ASYNC_COMMIT)
            if books:
                roster.write(curs, self._upsert_books, books)
            if batch is not None:
                self._apply(curs, batch)
                faults.hit("projection_batch")  # written, not yet committed
            insert_tracking(self, curs, tracking)

    def call_apply(
        self, batch: Writes | None, tracking: Tracking, conn: psycopg.Connection[Any] | None = None
    ) -> None:
        """A batch and its tracking record by one call of the view's function (writes.py), in
        its own transaction, or in the caller's on `conn`."""
        trades, positions, orders = (
            (batch.trades, batch.positions, batch.orders) if batch else (None, None, None)
        )
        params = (
            *(trades or NO_TRADES),
            *(positions or NO_POSITIONS),
            *(orders or NO_ORDERS),
            tracking.application_name,
            tracking.notification_id,
        )
        if conn is not None:
            self._call_apply(conn, params)
            return
        with self.datastore.get_connection() as pooled:
            assert pooled.autocommit  # the call is its own transaction: one round trip
            self._call_apply(pooled, params)

    def _call_apply(self, conn: psycopg.Connection[Any], params: tuple[Any, ...]) -> None:
        # Inside the pool's context: it turns psycopg's errors into eventsourcing's.
        try:
            conn.execute(self._apply_call, params, prepare=True)
        except psycopg.Error as error:
            if error.sqlstate == writes.TRACKING_STALE:
                raise IntegrityError(str(error.diag.message_primary)) from error
            raise

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

    def drop_read_indexes(self) -> None:
        """Drop the indexes only reads use (a replay builds them again at its end)."""
        with self.datastore.transaction(commit=True) as curs:
            for statement in writes.drop_index_statements(self.datastore.schema):
                curs.execute(statement)

    def create_read_indexes(self) -> None:
        """Build the indexes only reads use, where missing, side by side."""
        # One connection each: PostgreSQL builds each index on one core, the GIN one longest.
        with ThreadPoolExecutor(len(self._create_indexes)) as pool:
            for done in [pool.submit(self._create, s) for s in self._create_indexes]:
                done.result()

    def _create(self, statement: Composed) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SET LOCAL maintenance_work_mem = '256MB'")  # GIN builds in memory
            curs.execute(statement)

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
