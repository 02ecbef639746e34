"""eventsourcing's Postgres factory, building the ledger's recorders."""

from __future__ import annotations

from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresFactory,
    PostgresProcessRecorder,
    PostgresTrackingRecorder,
)

from ledger.store.recorder import LedgerRecorder
from ledger.store.schema import OneCreatorAtATime

# The stock factory's environment, for code that means to use eventsourcing as it comes.
STOCK = "eventsourcing.postgres"


class SnapshotRecorder(OneCreatorAtATime, PostgresAggregateRecorder):
    """The books' snapshots."""


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
