"""The read models in PostgreSQL: the order log, open positions and closed trades."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier

from ledger import faults
from ledger.domain import Outcome, Position
from ledger.store.overrides import insert_tracking
from projections.fold import Key, Opened, PlacedOrder, fold

TABLES = ("orders", "positions", "trades")
UNIT_SEPARATOR = "\x1f"  # joins user names for one array column; never in a valid name


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column, for unnest()."""
    return [[row[n] for row in rows] for n in range(width)] if rows else [[]] * width


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
        # Set-based statements: a batch of any size costs the same few round trips.
        self._insert_orders = SQL(
            "INSERT INTO {0} (sequence, order_id, strategy, instrument, position, received_at,"
            " response, accepted_for, rejected_for, reason, users)"
            " SELECT s, o, st, i, p, r, resp, a::jsonb, rj::jsonb, re, string_to_array(u, %b)"
            " FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[],"
            " %b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[])"
            " AS t(s, o, st, i, p, r, resp, a, rj, re, u)"
        ).format(t["orders"])
        self._close_positions = SQL(
            "DELETE FROM {0} AS p USING unnest(%b::text[], %b::text[], %b::text[])"
            " AS k(u, s, i) WHERE p.user_name = k.u AND p.strategy = k.s AND p.instrument = k.i"
            " RETURNING p.user_name, p.strategy, p.instrument, p.order_id, p.opened_at, p.sequence"
        ).format(t["positions"])
        self._open_positions = SQL(
            "INSERT INTO {0} (user_name, strategy, instrument, order_id, opened_at, sequence)"
            " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[],"
            " %b::timestamptz[], %b::bigint[])"
        ).format(t["positions"])
        self._insert_trades = SQL(
            "INSERT INTO {0} (user_name, strategy, instrument, buy_order_id, sell_order_id,"
            " opened_at, closed_at, buy_sequence, sell_sequence)"
            " SELECT u, s, i, b, x, o, c, bs, ss FROM unnest(%b::text[], %b::text[], %b::text[],"
            " %b::text[], %b::text[], %b::timestamptz[], %b::timestamptz[], %b::bigint[],"
            " %b::bigint[]) WITH ORDINALITY AS t(u, s, i, b, x, o, c, bs, ss, n) ORDER BY n"
        ).format(t["trades"])

    def apply(self, orders: Sequence[PlacedOrder], tracking: Tracking) -> None:
        """Apply orders in sequence order, and record how far the log has been read, at once."""
        with self.datastore.transaction(commit=True) as curs:
            if orders:
                self._apply(curs, orders)
                faults.hit("projection_batch")  # written, not yet committed
            insert_tracking(self, curs, tracking)

    def _apply(self, curs: Cursor[DictRow], orders: Sequence[PlacedOrder]) -> None:
        # Positions the batch sells are taken out of the table; the batch is folded in
        # memory; what is still open afterwards goes back in.
        sold = {
            (user, order.strategy, order.instrument)
            for order in orders
            if order.position == Position.SELL
            for user in order.accepted_for
        }
        open_: dict[Key, Opened] = {}
        if sold:
            curs.execute(self._close_positions, _columns(list(sold), 3), prepare=True)
            for row in curs.fetchall():
                key = (row["user_name"], row["strategy"], row["instrument"])
                open_[key] = Opened(row["order_id"], row["opened_at"], row["sequence"])
        closed = fold(orders, open_)
        if closed:
            trade_rows = [
                (*c.key, c.buy.order_id, c.sell.order_id, c.buy.at, c.sell.at, *c.sequences)
                for c in closed
            ]
            curs.execute(self._insert_trades, _columns(trade_rows, 9), prepare=True)
        if open_:
            open_rows = [(*key, o.order_id, o.at, o.sequence) for key, o in open_.items()]
            curs.execute(self._open_positions, _columns(open_rows, 6), prepare=True)
        curs.execute(
            self._insert_orders,
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
            prepare=True,
        )

    def reset(self, application_name: str) -> None:
        """Empty the read tables and forget the tracking position (for a replay)."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL("TRUNCATE {0}, {1}, {2} RESTART IDENTITY").format(
                    self.tables["orders"], self.tables["positions"], self.tables["trades"]
                )
            )
            curs.execute(
                SQL("DELETE FROM {0}.{1} WHERE application_name = %s").format(
                    Identifier(self.datastore.schema), Identifier(self.tracking_table_name)
                ),
                (application_name,),
            )

    def query(self, statement: Composed, params: Sequence[Any]) -> list[dict[str, Any]]:
        """Run a read query and return its rows."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params)
            return [dict(row) for row in curs.fetchall()]
