"""The Postgres recorder of the ledger: optimistic read checks and fail-fast inserts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Cursor
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier, Literal

from ledger import faults
from ledger.overrides.subscription import LedgerSubscription
from ledger.store.schema import OneCreatorAtATime


def writers_key(schema: str, table: str) -> str:
    """The advisory lock writers of the events table take for their transaction."""
    return f"ledger writers {schema or 'public'}.{table}"


class StaleRead(IntegrityError):
    """A book that a decision read has changed since it was loaded."""


class LedgerRecorder(OneCreatorAtATime, PostgresApplicationRecorder):
    """Checks the versions of the books a batch read, inside the insert's table lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        table = SQL("{0}.{1}").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )
        # A book changed since it was read iff its next version exists: one primary-key probe
        # per book, and no rows come back unless something is stale.
        self._stale_sql = SQL(
            "SELECT count(*) FROM unnest(%b::uuid[], %b::bigint[]) AS x(id, version)"
            " JOIN {0} AS e ON e.originator_id = x.id AND e.originator_version = x.version + 1"
        ).format(table)
        # Four plain arrays instead of eventsourcing's array of a composite type: psycopg
        # dumps those in C, where composites are escaped row by row in Python.
        self._insert_sql = SQL(
            "INSERT INTO {0} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[])"
            " RETURNING notification_id"
        ).format(table)
        # One round trip: the writers' lock (insert order = commit order, for tailing readers),
        # a bounded wait for it, and the wake-up for listening projections. An advisory lock,
        # not eventsourcing's LOCK TABLE ... IN EXCLUSIVE MODE: that mode conflicts with
        # VACUUM's, so every autovacuum of the events table stopped all writes until PostgreSQL
        # cancelled it (deadlock_timeout, 1 s: p99 922 ms in a bench run), and an
        # anti-wraparound one, never cancelled, would stop them for its whole length. Every
        # writer of the events table is this recorder, so the serial order is the same.
        self._lock_and_notify_sql = SQL(
            "SET LOCAL lock_timeout = '{0}s'; SELECT pg_advisory_xact_lock(hashtext({1}));"
            " NOTIFY {2}"
        ).format(
            SQL(str(int(self.datastore.lock_timeout))),
            Literal(writers_key(self.datastore.schema, self.events_table_name)),
            Identifier(self.channel_name),
        )
        self._notification_sql = SQL(
            "SELECT originator_id, notification_id FROM {0} "
            "WHERE originator_id = ANY(%s) AND originator_version = 1"
        ).format(table)

    # No retry loop: the caller answers 503 within seconds and the client retries with its
    # ORDER_ID, which is safer than re-sending a commit of unknown outcome. No pipeline
    # either: libpq's pipeline mode can stall on large batches over a Unix socket (seen with
    # the embedded server), and four plain round trips cost under a millisecond.
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as curs,
        ):
            curs.execute(self._lock_and_notify_sql)
            self._check_versions(curs, kwargs.get("expected_versions"))
            if not stored_events:
                return None
            curs.execute(
                self._insert_sql,
                (
                    [e.originator_id for e in stored_events],
                    [e.originator_version for e in stored_events],
                    [e.topic for e in stored_events],
                    [e.state for e in stored_events],
                ),
                prepare=True,
            )
            ids = [row[0] for row in curs.fetchall()]
            faults.hit("before_commit")
            return ids

    def _check_versions(
        self, curs: Cursor[tuple[Any, ...]], expected: dict[UUID, int] | None
    ) -> None:
        """Raise StaleRead if a book the decisions read has changed (the table is locked)."""
        if not expected:
            return
        curs.execute(self._stale_sql, (list(expected), list(expected.values())), prepare=True)
        row = curs.fetchone()
        if row and row[0]:
            msg = f"{row[0]} book(s) changed since read"
            raise StaleRead(msg)

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> LedgerSubscription:
        """New events after `gt`, as they are committed (tailing readers: projector, streams)."""
        return LedgerSubscription(recorder=self, gt=gt, topics=topics)

    def first_notification_ids(self, originator_ids: Sequence[UUID]) -> dict[UUID, int]:
        """The notification id of each given aggregate's first event, if it exists."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._notification_sql, (list(originator_ids),), prepare=True)
            return {row["originator_id"]: row["notification_id"] for row in curs.fetchall()}
