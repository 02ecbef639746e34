"""When a book's snapshot comes due."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from types import SimpleNamespace
from uuid import UUID

import pytest
from eventsourcing.application import ProcessingEvent
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import Book, Roster
from ledger.snapshots import ROSTER_FIRST, ROSTER_SNAPSHOTS, due, due_snapshots


@given(st.uuids(), st.integers(1, 10**9), st.integers(1, 1000))
def test_one_version_in_each_interval_is_due(book: UUID, start: int, interval: int) -> None:
    assert sum(due(book, v, interval) for v in range(start, start + interval)) == 1


def test_books_that_move_together_come_due_a_few_at_a_time() -> None:
    books = [Book.create_id(f"user-{n}", "STRATEGY_A") for n in range(10_000)]
    books += [uuid.uuid4() for _ in range(10_000)]
    for interval in (10, 100):
        # Every follower's book takes one event per order: each version is one order.
        per_version = Counter(
            v for b in books for v in range(1, interval + 1) if due(b, v, interval)
        )
        assert sum(per_version.values()) == len(books)
        assert max(per_version.values()) < 2 * len(books) / interval  # ~1/interval of them


def test_the_roster_snapshots_whenever_it_grew_by_a_tenth() -> None:
    versions = sorted(ROSTER_SNAPSHOTS)
    assert versions[0] == ROSTER_FIRST
    assert versions[-1] >= 2**62  # any roster a store can hold
    for before, after in itertools.pairwise(versions):
        # A load replays at most a tenth of the roster's events past its last snapshot.
        assert 0 < after - before <= before // 10


def test_a_roster_snapshot_keeps_the_books_it_was_taken_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("ledger.snapshots.ROSTER_SNAPSHOTS", frozenset({2}))
    roster = Roster()
    roster.add_books([["Ann", "STRATEGY_A"]])  # version 2: due
    batch: ProcessingEvent[UUID] = ProcessingEvent()
    batch.events.extend(roster.collect_events())
    batch.aggregates[roster.id] = roster
    app = SimpleNamespace(snapshots=object(), snapshotting_intervals={})
    (snapshot,) = due_snapshots(app, batch)  # type: ignore[arg-type]
    # The writer decides the next batch while this one's snapshots are stored.
    roster.add_books([["Bob", "STRATEGY_A"]])
    assert snapshot.originator_version == 2
    assert snapshot.state["books"] == [("Ann", "STRATEGY_A")]
    assert roster.books == [("Ann", "STRATEGY_A"), ("Bob", "STRATEGY_A")]
