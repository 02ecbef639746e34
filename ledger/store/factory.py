"""eventsourcing's Postgres factory, building the ledger's recorders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresFactory,
    PostgresProcessRecorder,
    PostgresTrackingRecorder,
)
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from ledger.store.recorder import LedgerRecorder, event_columns
from ledger.store.schema import OneCreatorAtATime

# The stock factory's environment, for code that means to use eventsourcing as it comes.
STOCK = "eventsourcing.postgres"


# Snapshots only shorten loads: one lost in a crash of PostgreSQL costs a longer load, never a
# wrong book (the events it summarises were committed, durably, before it was taken). So their
# transaction does not wait for its WAL to reach the disk: under the 21 x 4 load the writer's
# ~3.5 snapshots a batch, each its own fsync'd commit, took ~6.5 ms of a ~23 ms turn of the
# commits' thread, and the next commit waited for them. One call, one transaction, as the
# events' append (ledger/store/recorder.py), with plain arrays rather than the stock composite.
PUT_FUNCTION = """
CREATE OR REPLACE FUNCTION {put}(ids uuid[], versions bigint[], topics text[], states bytea[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  INSERT INTO {table} (originator_id, originator_version, topic, state)
    SELECT * FROM unnest(ids, versions, topics, states);
END $$
"""


class SnapshotRecorder(OneCreatorAtATime, PostgresAggregateRecorder):
    """The books' snapshots, and the roster's: stored without waiting for the disk."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema, table = Identifier(self.datastore.schema), Identifier(self.events_table_name)
        put = SQL("{0}.{1}").format(schema, Identifier(f"{self.events_table_name}_put"))
        self.sql_create_statements.append(
            SQL(PUT_FUNCTION).format(put=put, table=SQL("{0}.{1}").format(schema, table))
        )
        self._put_sql = SQL("SELECT {0}(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[])").format(
            put
        )
        self._last_version_sql = SQL(
            "SELECT max(originator_version) FROM {0}.{1} WHERE originator_id = %s"
        ).format(schema, table)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Store snapshots in one call, committed without waiting for the WAL's flush."""
        if not stored_events:
            return None
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            assert conn.autocommit  # the call is its own transaction
            curs.execute(self._put_sql, event_columns(stored_events), prepare=True)
        return None

    def last_version(self, originator_id: UUID) -> int:
        """The version of an aggregate's last snapshot (0: none), without reading the snapshot."""
        # The roster's holds every book: megabytes at 50,000 books, where only its version counts.
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            row = curs.execute(self._last_version_sql, (originator_id,)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0


class TrackingRecorder(OneCreatorAtATime, PostgresTrackingRecorder):
    """Tracking records of a projection that names no recorder of its own."""


class ProcessRecorder(OneCreatorAtATime, PostgresProcessRecorder):
    """Events with tracking records, for a process application."""


class LedgerFactory(PostgresFactory):
    """Every recorder it builds creates its tables with no other creator at work on the schema."""

    aggregate_recorder_class = SnapshotRecorder
    application_recorder_class = LedgerRecorder
    tracking_recorder_class = TrackingRecorder
    process_recorder_class = ProcessRecorder
