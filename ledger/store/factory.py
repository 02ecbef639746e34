"""eventsourcing's Postgres factory, building the ledger's recorders."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresFactory,
    PostgresProcessRecorder,
    PostgresTrackingRecorder,
)
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from ledger.store.recorder import LedgerRecorder
from ledger.store.schema import OneCreatorAtATime

# The stock factory's environment, for code that means to use eventsourcing as it comes.
STOCK = "eventsourcing.postgres"


class SnapshotRecorder(OneCreatorAtATime, PostgresAggregateRecorder):
    """The books' snapshots, and the roster's."""

    def last_version(self, originator_id: UUID) -> int:
        """The version of an aggregate's last snapshot (0: none), without reading the snapshot."""
        # The roster's holds every book: megabytes at 50,000 books, where only its version counts.
        statement = SQL("SELECT max(originator_version) FROM {0}.{1} WHERE originator_id = %s")
        table = statement.format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            row = curs.execute(table, (originator_id,)).fetchone()
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
