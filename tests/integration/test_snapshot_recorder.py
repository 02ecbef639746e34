"""The snapshots' recorder: one call per put, the stock table and rows, no wait for the disk."""

from __future__ import annotations

from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from psycopg.sql import SQL, Identifier

from ledger.application import Ledger
from ledger.domain import Book
from ledger.store.factory import SnapshotRecorder


def recorder(ledger: Ledger) -> SnapshotRecorder:
    assert ledger.snapshots is not None
    snapshots = ledger.snapshots.recorder
    assert isinstance(snapshots, SnapshotRecorder)
    return snapshots


def test_snapshots_put_read_back_by_the_stock_recorder(ledger: Ledger) -> None:
    snapshots = recorder(ledger)
    book = Book.create_id("Holland Proctor", "STRATEGY_B")
    other = uuid4()
    stored = [
        StoredEvent(book, 7, "ledger.domain:Book.Snapshot", b'{"open":{}}'),
        StoredEvent(other, 3, "ledger.domain:Book.Snapshot", b"\x00\xff binary"),
    ]
    snapshots.insert_events(stored)
    stock = PostgresAggregateRecorder(
        snapshots.datastore, events_table_name=snapshots.events_table_name
    )
    assert stock.select_events(book) == [stored[0]]
    assert stock.select_events(other) == [stored[1]]


def test_a_snapshot_put_twice_is_refused_and_its_batch_not_stored(ledger: Ledger) -> None:
    snapshots = recorder(ledger)
    first = StoredEvent(uuid4(), 1, "t", b"{}")
    snapshots.insert_events([first])
    fresh = StoredEvent(uuid4(), 1, "t", b"{}")
    with pytest.raises(IntegrityError):
        snapshots.insert_events([fresh, first])
    assert snapshots.select_events(fresh.originator_id) == []  # one transaction


def test_a_snapshot_put_does_not_wait_for_the_disk(ledger: Ledger) -> None:
    # What the put function leaves set in its transaction is what its commit obeys.
    snapshots = recorder(ledger)
    put = SQL("SELECT {0}.{1}(%s::uuid[], %s::bigint[], %s::text[], %s::bytea[])").format(
        Identifier(snapshots.datastore.schema),
        Identifier(f"{snapshots.events_table_name}_put"),
    )
    with snapshots.datastore.transaction(commit=True) as curs:
        before = curs.execute("SELECT current_setting('synchronous_commit') AS s").fetchone()
        curs.execute(put, ([uuid4()], [1], ["t"], [b"{}"]))
        after = curs.execute("SELECT current_setting('synchronous_commit') AS s").fetchone()
    assert before is not None and after is not None
    assert after["s"] == "off"
    with snapshots.datastore.transaction() as curs:  # only for that transaction
        again = curs.execute("SELECT current_setting('synchronous_commit') AS s").fetchone()
    assert again is not None and again["s"] == before["s"]  # the server's own setting
