"""The projection decides about every event the domain defines."""

from __future__ import annotations

from ledger.domain import Book, Order, Roster
from projections.projection import EVENTS


def test_every_event_of_the_domain_has_a_projection_case() -> None:
    events = {
        value
        for aggregate in (Book, Roster, Order)
        for value in vars(aggregate).values()
        if isinstance(value, type)
        and issubclass(value, aggregate.Event)
        # the generic bases, and snapshots, which are not in the event log
        and value.__name__ not in ("Event", "Created", "Snapshot")
    }
    assert events
    assert events == set(EVENTS), "a new event needs a decision in projections.projection.EVENTS"
