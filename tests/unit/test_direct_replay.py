"""A stored event replayed from its decoded state mutates a book as the event object would."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from eventsourcing.domain import Aggregate, OriginatorVersionError, event
from eventsourcing.persistence import JSONTranscoder
from hypothesis import given
from hypothesis import strategies as st

from ledger.application import Ledger
from ledger.domain import Book, Position
from ledger.overrides.aggregates import direct_replay

INSTRUMENTS = ["ACC", "MINDA", "Zoë"]


def transcoder() -> JSONTranscoder:
    """The ledger's own transcoder, as its mapper decodes stored state."""
    return Ledger.construct_transcoder(Ledger.__new__(Ledger))


def fresh_book() -> Book:
    book = Book(user="u", strategy="S", instruments=INSTRUMENTS)
    book.collect_events()
    return book


def stored_state(new_event: Any) -> dict[str, Any]:
    """The event's state as the mapper stores it and reads it back."""
    codec = transcoder()
    state = {k: v for k, v in vars(new_event).items() if k not in ("originator_id",)}
    state.pop("originator_version")
    decoded: dict[str, Any] = codec.decode(codec.encode(state))
    return decoded


@given(
    st.lists(
        st.tuples(st.sampled_from(INSTRUMENTS), st.integers(1, 5), st.none() | st.just("12.5")),
        max_size=12,
    )
)
def test_replayed_state_equals_the_event_objects(orders: list[tuple[str, int, str | None]]) -> None:
    written = fresh_book()
    by_events, by_state = copy.deepcopy(written), copy.deepcopy(written)
    for n, (instrument, quantity, price) in enumerate(orders):
        if instrument in written.open:
            written.book(f"o-{n}", instrument, Position.SELL, written.created_on, None, price)
        else:
            written.book(f"o-{n}", instrument, Position.BUY, written.created_on, quantity, price)
        (new_event,) = written.collect_events()
        new_event.mutate(by_events)
        replay = direct_replay(type(new_event))
        assert replay is not None
        replay(by_state, new_event.originator_version, stored_state(new_event))
    assert vars(by_state) == vars(by_events)
    assert by_state.version == written.version
    assert by_state.modified_on == written.modified_on


def test_a_gap_in_versions_is_refused() -> None:
    book = fresh_book()
    book.open_position(instrument="ACC", order_id="o-1", at=book.created_on)
    (opened,) = book.collect_events()
    replay = direct_replay(type(opened))
    assert replay is not None
    with pytest.raises(OriginatorVersionError):
        replay(fresh_book(), opened.originator_version + 1, stored_state(opened))


class Custom(Aggregate):
    """Events the direct path must leave to eventsourcing."""

    @event("Named")
    def name(self, value: str) -> None:
        self.value = value

    class Applied(Aggregate.Event):
        value: str

        def apply(self, aggregate: Any) -> None:
            aggregate.value = self.value

    class Upcast(Aggregate.Event):
        class_version = 2

    @event("Versioned")
    def by_version(self, originator_version: int) -> None:
        self.seen = originator_version


def test_only_plain_event_methods_replay_directly() -> None:
    assert direct_replay(vars(Custom)["Named"]) is not None
    assert direct_replay(Custom.Applied) is None  # an apply() of its own
    assert direct_replay(Custom.Upcast) is None  # upcast by the mapper
    assert direct_replay(vars(Custom)["Versioned"]) is None  # takes the id or version
    assert direct_replay(Custom.Created) is None  # creates: CanInitAggregate.mutate
    assert direct_replay(Book.Snapshot) is None
