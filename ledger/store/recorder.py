"""The Postgres recorder of the ledger: optimistic read checks and fail-fast inserts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
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


STALE = "LDSTL"  # the SQLSTATE the append function raises for a stale read

# A batch's append, in one round trip and one transaction: a commit took five (BEGIN, lock,
# stale check, insert, COMMIT), and on a busy 2-core machine each waited ~1 ms for a core
# or the writer's GIL: 9-12 ms per 21-order batch, 2 ms of it CPU. The writers take turns
# on an advisory lock (insert order = commit order, for tailing readers), waited for at
# most lock_timeout; not eventsourcing's LOCK TABLE ... IN EXCLUSIVE MODE, which conflicts
# with VACUUM's lock, so every autovacuum of the events table stopped all writes until
# PostgreSQL cancelled it (deadlock_timeout, 1 s: p99 922 ms in a bench run), and an
# anti-wraparound one, never cancelled, would stop them for its whole length. Every writer
# of the events table comes through here, so the serial order is the same. A book changed
# since the decisions read it has its next version stored: one primary-key probe per book
# the batch does not write (see unwritten()).
# Four plain arrays, not eventsourcing's array of a composite type: psycopg dumps those in
# C, where composites are escaped row by row in Python.
APPEND_FUNCTION = """
CREATE OR REPLACE FUNCTION {append}(ids uuid[], versions bigint[], topics text[],
  states bytea[], read_ids uuid[], read_versions bigint[], writers text, wait text)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE stale bigint;
BEGIN
  PERFORM set_config('lock_timeout', wait, true);
  PERFORM pg_advisory_xact_lock(hashtext(writers));
  SELECT count(*) INTO stale FROM unnest(read_ids, read_versions) AS x(id, version)
    JOIN {table} AS e ON e.originator_id = x.id AND e.originator_version = x.version + 1;
  IF stale > 0 THEN
    RAISE EXCEPTION '% book(s) changed since read', stale USING ERRCODE = {stale};
  END IF;
  PERFORM pg_notify({channel}, '');
  RETURN QUERY INSERT INTO {table} (originator_id, originator_version, topic, state)
    SELECT * FROM unnest(ids, versions, topics, states) RETURNING notification_id;
END $$
"""


def event_columns(
    stored_events: Sequence[StoredEvent],
) -> tuple[list[UUID | str], list[int], list[str], list[bytes]]:
    """A batch as four plain arrays (ids, versions, topics, states): what the functions take."""
    return (
        [e.originator_id for e in stored_events],
        [e.originator_version for e in stored_events],
        [e.topic for e in stored_events],
        [e.state for e in stored_events],
    )


def unwritten(stored_events: Sequence[StoredEvent], expected: dict[UUID, int]) -> dict[UUID, int]:
    """The read books the stale check must probe: those the batch does not write next.

    A book whose first event here is the version after the one read needs no probe: were
    that version stored already, the insert's primary key refuses it (an IntegrityError,
    as a stale read is). A 10,000-follower order's probes took 24-30 ms of its commit.
    """
    first: dict[UUID | str, int] = {}
    for stored in stored_events:
        first.setdefault(stored.originator_id, stored.originator_version)
    return {i: v for i, v in expected.items() if first.get(i) != v + 1}


class LedgerRecorder(OneCreatorAtATime, PostgresApplicationRecorder):
    """Appends a batch in one round trip, checking the books it read under the writers' lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema, events = self.datastore.schema, self.events_table_name
        table = SQL("{0}.{1}").format(Identifier(schema), Identifier(events))
        append = SQL("{0}.{1}").format(Identifier(schema), Identifier(f"{events}_append"))
        self.sql_create_statements.append(
            SQL(APPEND_FUNCTION).format(
                append=append, table=table, stale=Literal(STALE), channel=Literal(self.channel_name)
            )
        )
        self._append_sql = SQL(
            "SELECT * FROM {0}(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[],"
            " %b::uuid[], %b::bigint[], {1}, {2})"
        ).format(
            append,
            Literal(writers_key(schema, events)),
            Literal(f"{int(self.datastore.lock_timeout)}s"),
        )
        self._notification_sql = SQL(
            "SELECT originator_id, notification_id FROM {0} "
            "WHERE originator_id = ANY(%s) AND originator_version = 1"
        ).format(table)

    # No retry loop: the caller answers 503 within seconds and the client retries with its
    # ORDER_ID, which is safer than re-sending a commit of unknown outcome.
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        expected = unwritten(stored_events, kwargs.get("expected_versions") or {})
        faults.hit("before_commit")
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            assert conn.autocommit  # the call is its own transaction: one round trip
            try:
                curs.execute(
                    self._append_sql,
                    (*event_columns(stored_events), list(expected), list(expected.values())),
                    prepare=True,
                )
            except psycopg.Error as error:
                if error.sqlstate == STALE:
                    raise StaleRead(str(error.diag.message_primary)) from error
                raise
            ids = [row[0] for row in curs.fetchall()]
        return ids if stored_events else None

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> LedgerSubscription:
        """New events after `gt`, as they are committed (tailing readers: projector, streams)."""
        return LedgerSubscription(recorder=self, gt=gt, topics=topics)

    def first_notification_ids(self, originator_ids: Sequence[UUID]) -> dict[UUID, int]:
        """The notification id of each given aggregate's first event, if it exists."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._notification_sql, (list(originator_ids),), prepare=True)
            return {row["originator_id"]: row["notification_id"] for row in curs.fetchall()}
