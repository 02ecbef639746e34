"""The projection decides about every event the domain defines, and reads orders without
their event objects."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger.domain import Book, Order, Position, Reason, Rejection, Roster
from ledger.store.mapper import LedgerMapper
from ledger.store.transcoder import OrjsonTranscoder
from projections.fold import PlacedOrder
from projections.projection import EVENTS, LedgerProjection
from tests.unit.test_decoding import stored
from tests.unit.test_mapper import registered


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


def test_the_decoder_reads_an_order_as_its_placed_order_and_any_other_event_as_itself() -> None:
    mapper = LedgerMapper(transcoder=registered(OrjsonTranscoder()))
    at = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    rejected: list[Rejection] = [{"user": "Kamryn Li", "reason": Reason.ALREADY_OPEN}]
    order = Order.place("o1", "STRATEGY_A", "ACC", Position.BUY.value, at, ["Holland Proctor"],
                        rejected, None, 2, "101.5", {"Holland Proctor": "3"})  # fmt: skip
    roster = Roster()
    roster.add_books(books=[["Holland Proctor", "STRATEGY_A"]])
    decode = LedgerProjection.decoder(mapper)
    (placed,) = order.collect_events()
    read = decode(stored(mapper, placed, 41))
    assert read == PlacedOrder.from_event(mapper.to_domain_event(stored(mapper, placed, 41)), 41)
    assert read.sequence == 41 and read.multipliers == {"Holland Proctor": "3"}
    assert LedgerProjection.cost(read) == LedgerProjection.cost(placed) == 2
    for event in roster.collect_events():
        assert decode(stored(mapper, event, 42)) == event
