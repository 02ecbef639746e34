"""The decoder of stored orders (the replay's and the live projector's) gives what the stock
event decoding gives."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import Order, Position, Reason
from ledger.store.mapper import LedgerMapper
from ledger.store.transcoder import OrjsonTranscoder
from projections.decoding import placed_decoder
from tests.unit.test_mapper import instants, names, registered


class CountingMapper(LedgerMapper):
    """Counts the events decoded the stock way."""

    decoded = 0

    def to_domain_event(self, stored_event: Any) -> Any:
        CountingMapper.decoded += 1
        return super().to_domain_event(stored_event)


def stored(mapper: Mapper[UUID], event: Any, sequence: int) -> Notification:
    """`event` as the store hands it back, at `sequence`."""
    record = mapper.to_stored_event(event)
    return Notification(
        id=sequence,
        originator_id=record.originator_id,
        originator_version=record.originator_version,
        topic=record.topic,
        state=record.state,
    )


MAPPER = CountingMapper(transcoder=registered(OrjsonTranscoder()))
STOCK = Mapper[UUID](transcoder=registered(OrjsonTranscoder()))
decisions = st.lists(names, max_size=4)
rejections = st.lists(
    st.fixed_dictionaries({"user": names, "reason": st.sampled_from(list(Reason))}), max_size=4
)
prices = st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str)


@given(
    order_id=names,
    received_at=instants,
    accepted_for=decisions,
    rejected_for=rejections,
    reason=st.none() | st.sampled_from(list(Reason)),
    quantity=st.integers(1, 10**12),
    price=prices,
    multipliers=st.none() | st.dictionaries(names, prices.filter(bool), max_size=3),
    decoy=st.booleans(),
)
def test_fast_decoding_equals_the_stock_decoding(
    order_id: str,
    received_at: datetime,
    accepted_for: list[str],
    rejected_for: Any,
    reason: Reason | None,
    quantity: int,
    price: str | None,
    multipliers: dict[str, str] | None,
    decoy: bool,
) -> None:
    if decoy:  # a name that reads like a tag's key: the stock way is taken, still equal
        accepted_for = [*accepted_for, "_type_"]
    order = Order.place(
        order_id, "S", "I", Position.BUY.value, received_at, accepted_for, rejected_for,
        reason, quantity, price, multipliers,
    )  # fmt: skip
    (placed,) = order.collect_events()
    notification = stored(MAPPER, placed, 7)
    before = CountingMapper.decoded
    fast = placed_decoder(MAPPER)(notification)
    assert CountingMapper.decoded - before == int(decoy)  # the fast way unless a decoy
    assert fast == placed_decoder(STOCK)(notification)
    assert fast.received_at == received_at
    assert fast.received_at.utcoffset() == received_at.utcoffset()
