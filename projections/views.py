"""The read models in PostgreSQL: the order log, open positions and closed trades."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier
from psycopg.types.json import Jsonb

TABLES = ("orders", "positions", "trades")


@dataclass(frozen=True)
class PlacedOrder:
    """What the read models need from one Order.Placed event."""

    sequence: int
    order_id: str
    strategy: str
    instrument: str
    position: str
    received_at: datetime
    accepted_for: list[str]
    rejected_for: list[dict[str, str]]
    reason: str | None

    @classmethod
    def from_event(cls, event: Any, sequence: int) -> PlacedOrder:
        """Take the fields of a stored Placed event."""
        return cls(
            sequence=sequence,
            order_id=event.order_id,
            strategy=event.strategy,
            instrument=event.instrument,
            position=event.position,
            received_at=event.received_at,
            accepted_for=list(event.accepted_for),
            rejected_for=list(event.rejected_for),
            reason=event.reason,
        )


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
        self._insert_order = SQL(
            "INSERT INTO {0} (sequence, order_id, strategy, instrument, position, received_at,"
            " response, accepted_for, rejected_for, reason, users)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        ).format(t["orders"])
        self._open = SQL(
            "INSERT INTO {0} (user_name, strategy, instrument, order_id, opened_at, sequence)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
        ).format(t["positions"])
        self._close = SQL(
            "WITH closed AS (DELETE FROM {0} WHERE user_name = %s AND strategy = %s"
            " AND instrument = %s RETURNING *)"
            " INSERT INTO {1} (user_name, strategy, instrument, buy_order_id, sell_order_id,"
            " opened_at, closed_at, buy_sequence, sell_sequence)"
            " SELECT user_name, strategy, instrument, order_id, %s, opened_at, %s, sequence, %s"
            " FROM closed RETURNING id"
        ).format(t["positions"], t["trades"])

    def _apply(self, curs: Cursor[DictRow], order: PlacedOrder) -> None:
        users = order.accepted_for + [r["user"] for r in order.rejected_for]
        curs.execute(
            self._insert_order,
            (
                order.sequence,
                order.order_id,
                order.strategy,
                order.instrument,
                order.position,
                order.received_at,
                "ACCEPTED" if order.accepted_for else "REJECTED",
                Jsonb(order.accepted_for),
                Jsonb(order.rejected_for),
                order.reason,
                users,
            ),
            prepare=True,
        )
        for user in order.accepted_for:
            if order.position == "BUY":
                curs.execute(
                    self._open,
                    (
                        user,
                        order.strategy,
                        order.instrument,
                        order.order_id,
                        order.received_at,
                        order.sequence,
                    ),
                    prepare=True,
                )
            else:
                curs.execute(
                    self._close,
                    (
                        user,
                        order.strategy,
                        order.instrument,
                        order.order_id,
                        order.received_at,
                        order.sequence,
                    ),
                    prepare=True,
                )
                if curs.fetchone() is None:
                    msg = f"order {order.order_id} closes a position the view does not hold"
                    raise RuntimeError(msg)

    def apply(self, orders: Sequence[PlacedOrder], tracking: Tracking) -> None:
        """Apply orders and record how far the log has been read, in one transaction."""
        with self.datastore.transaction(commit=True) as curs:
            for order in orders:
                self._apply(curs, order)
            self._insert_tracking(curs, tracking)

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
