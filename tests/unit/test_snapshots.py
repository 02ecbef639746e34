"""When a book's snapshot comes due."""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace
from uuid import UUID

import pytest
from eventsourcing.application import ProcessingEvent
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import Book, Order, OrderRefused, Position, Roster
from ledger.snapshots import ROSTER_FIRST, ROSTER_SNAPSHOTS, due, due_snapshots

NOW = datetime(2026, 12, 7, tzinfo=UTC)


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


def reference_due(
    app: SimpleNamespace, batch: ProcessingEvent[UUID], roster_versions: frozenset[int]
) -> set[UUID]:
    """The books (and roster) due, event by event, as due_snapshots chose them before."""
    taken = set()
    for domain_event in batch.events:
        aggregate = batch.aggregates.get(domain_event.originator_id)
        version = domain_event.originator_version
        if isinstance(aggregate, Roster):
            if version in roster_versions:
                taken.add(aggregate.id)
            continue
        interval = app.snapshotting_intervals.get(type(aggregate))
        if interval and due(domain_event.originator_id, version, interval):
            taken.add(domain_event.originator_id)
    return taken


@given(
    books=st.integers(1, 12),
    orders=st.lists(st.sampled_from(["ACC", "INFY"]), max_size=12),
    interval=st.integers(1, 5),
    order_interval=st.sampled_from([None, 0, 2]),
    roster_due=st.booleans(),
)
def test_due_snapshots_take_what_each_event_makes_due(
    books: int, orders: list[str], interval: int, order_interval: int | None, roster_due: bool
) -> None:
    # A mixed batch: books taken up and booking orders, the orders, the roster's books added.
    held = [
        Book(user=f"user-{n}", strategy="STRATEGY_A", instruments=["ACC", "INFY"])
        for n in range(books)
    ]
    roster = Roster()
    roster.add_books([[b.user, b.strategy] for b in held])
    batch: ProcessingEvent[UUID] = ProcessingEvent()
    for n, instrument in enumerate(orders):
        for book in held:
            with contextlib.suppress(OrderRefused):
                book.book(str(n), instrument, Position.BUY if n % 2 == 0 else Position.SELL, NOW)
        order = Order.place(str(n), "STRATEGY_A", instrument, "BUY", NOW, [], [], None)
        batch.events.extend(order.collect_events())
        batch.aggregates[order.id] = order
    for aggregate in [*held, roster]:
        batch.events.extend(aggregate.collect_events())
        batch.aggregates[aggregate.id] = aggregate
    intervals: dict[type, int] = {Book: interval}
    if order_interval is not None:
        intervals[Order] = order_interval
    app = SimpleNamespace(snapshots=object(), snapshotting_intervals=intervals)
    roster_versions = frozenset({roster.version}) if roster_due else frozenset()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("ledger.snapshots.ROSTER_SNAPSHOTS", roster_versions)
        expected = reference_due(app, batch, roster_versions)
        snapshots = due_snapshots(app, batch)  # type: ignore[arg-type]
    assert {s.originator_id for s in snapshots} == expected
    assert len(snapshots) == len(expected)
    assert (roster.id in expected) is roster_due
