"""The ledger's mapper writes the very bytes eventsourcing's stock Mapper and JSONTranscoder do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    UUIDAsHex,
)
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import Book, Order, Position, Reason, Rejection, Roster
from ledger.store.mapper import LedgerMapper
from ledger.store.transcoder import OrjsonTranscoder


def registered(transcoder: JSONTranscoder) -> JSONTranscoder:
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return transcoder


STOCK = Mapper[UUID](transcoder=registered(JSONTranscoder()))
FAST = LedgerMapper(transcoder=registered(OrjsonTranscoder()))

# Names as the ledger accepts them: no control characters, no lone surrogates.
names = st.text(
    st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=12
) | st.sampled_from(["Holland Proctor", 'L&T "q" \\ /', "Zoë Ångström", "李雷", "😀", "\u2028"])
timezones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(seconds=-3601))]
)
instants = st.datetimes(timezones=timezones) | st.datetimes()


def assert_same_stored_event(domain_event: Any) -> None:
    try:
        expected: StoredEvent | Exception = STOCK.to_stored_event(domain_event)
    except Exception as error:  # the stock path refuses: the fast one must refuse alike
        with pytest.raises(type(error)):
            FAST.to_stored_event(domain_event)
        return
    assert FAST.to_stored_event(domain_event) == expected


@given(
    user=names,
    strategy=names,
    instruments=st.lists(names, max_size=5),
    order_id=names,
    at=instants,
)
def test_book_and_roster_events(
    user: str, strategy: str, instruments: list[str], order_id: str, at: datetime
) -> None:
    book = Book(user=user, strategy=strategy, instruments=[*instruments, "ACC"])
    book.book(order_id, "ACC", Position.BUY, at)
    book.book(order_id + "-sell", "ACC", Position.SELL, at)
    book.change_instruments(instruments=instruments)
    book.drop()
    roster = Roster()
    roster.add_books(books=[[user, strategy], [order_id, strategy]])
    for domain_event in [*book.collect_events(), *roster.collect_events()]:
        assert_same_stored_event(domain_event)


@given(
    order_id=names,
    strategy=names,
    instrument=names,
    position=st.sampled_from(list(Position)),
    received_at=instants,
    accepted_for=st.lists(names, max_size=4),
    rejected_for=st.lists(
        st.fixed_dictionaries({"user": names, "reason": st.sampled_from(list(Reason))}),
        max_size=4,
    ),
    reason=st.none() | st.sampled_from(list(Reason)),
    place=st.booleans(),
)
def test_order_placed(
    order_id: str,
    strategy: str,
    instrument: str,
    position: Position,
    received_at: datetime,
    accepted_for: list[str],
    rejected_for: list[Rejection],
    reason: Reason | None,
    place: bool,
) -> None:
    new = Order.place if place else Order
    order = new(
        order_id=order_id,
        strategy=strategy,
        instrument=instrument,
        position=position.value,
        received_at=received_at,
        accepted_for=accepted_for,
        rejected_for=rejected_for,
        reason=reason,
    )
    (placed,) = order.collect_events()
    assert_same_stored_event(placed)


class Anything(DomainEvent):
    """Any value, to reach the mapper's fallbacks: floats, subclasses, odd keys."""

    value: Any


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too: orjson refuses those, the stock path writes them
    | st.floats()
    | st.text()  # lone surrogates included: both paths must refuse them
    | names
    | instants
    | st.uuids()
    | st.decimals()
    | st.sampled_from(list(Reason) + list(Position)),
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(st.text(), children, max_size=3)
        | st.dictionaries(st.integers() | st.none(), children, max_size=2)
    ),
    max_leaves=12,
)


@given(value=values)
def test_any_value_is_written_as_the_stock_path_writes_it(value: Any) -> None:
    assert_same_stored_event(
        Anything(
            originator_id=UUID(int=1),
            originator_version=1,
            timestamp=datetime.now(UTC),
            value=value,
        )
    )


def test_a_configured_cipher_or_other_transcoder_takes_the_stock_path() -> None:
    assert FAST._fast
    assert not LedgerMapper(transcoder=registered(JSONTranscoder()), compressor=object())._fast  # type: ignore[arg-type]
    other = registered(JSONTranscoder())
    other.encoder.ensure_ascii = True
    assert not LedgerMapper(transcoder=other)._fast


def test_decimal_values_are_tagged_as_the_stock_path_tags_them() -> None:
    event = Anything(
        originator_id=UUID(int=1),
        originator_version=1,
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        value={"amount": Decimal("1.10"), "id": UUID(int=7), "reason": Reason.ALREADY_OPEN},
    )
    stored = FAST.to_stored_event(event)
    assert stored == STOCK.to_stored_event(event)
    assert b'{"_type_":"decimal_str","_data_":"1.10"}' in stored.state
