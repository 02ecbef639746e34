"""Book.book(), Book.take_up(), Order.place(): what the @event methods make, without dispatch."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import Book, Order, OrderRefused, Position, Reason
from tests.support import book_by_decorators

AT = datetime(2026, 1, 1, tzinfo=UTC)
INSTRUMENTS = ["ACC", "MINDA", "Zoë"]


def without_timestamps(obj: Any) -> dict[str, Any]:
    """The object's state, in order, but for the wall-clock times the two paths take apart."""
    state = {
        k: v
        for k, v in vars(obj).items()
        if k not in ("timestamp", "_created_on", "_modified_on", "_pending_events")
    }
    state["<keys>"] = list(vars(obj))  # the stored JSON follows this order
    return state


PRICES = st.none() | st.sampled_from(["0.1", "101.25", "999999999999.99999999"])


@given(
    orders=st.lists(
        st.tuples(
            st.sampled_from([*INSTRUMENTS, "NTPC"]),
            st.sampled_from(list(Position)),
            st.none() | st.integers(1, 3) | st.integers(1, 10**9),
            PRICES,
        ),
        max_size=20,
    ),
    multiplier=st.sampled_from(["1", "3", "0.00000001", "123456789012.5"]),
)
def test_book_makes_the_events_the_decorated_methods_make(
    orders: list[tuple[str, Position, int | None, str | None]], multiplier: str
) -> None:
    fast, generic = (
        Book(
            user="Holland Proctor",
            strategy="STRATEGY_B",
            instruments=INSTRUMENTS,
            multiplier=multiplier,
        )
        for _ in range(2)
    )
    for n, (instrument, position, quantity, price) in enumerate(orders):
        outcomes = []
        for book, place in ((fast, Book.book), (generic, book_by_decorators)):
            try:
                place(book, str(n), instrument, position, AT, quantity, price)
                outcomes.append(None)
            except OrderRefused as refused:
                outcomes.append(refused.reason)
        assert outcomes[0] == outcomes[1]
        assert without_timestamps(fast) == without_timestamps(generic)
        assert fast.modified_on >= fast.created_on
    fast_events, generic_events = fast.collect_events(), generic.collect_events()
    assert [type(e) for e in fast_events] == [type(e) for e in generic_events]
    assert [without_timestamps(e) for e in fast_events] == [
        without_timestamps(e) for e in generic_events
    ]
    assert fast.modified_on == fast_events[-1].timestamp
    # Replaying the fast path's events gives the same book.
    replayed = None
    for domain_event in fast_events:
        replayed = domain_event.mutate(replayed)
    assert replayed == fast


@given(
    quantity=st.integers(1, 10**9),
    price=PRICES,
    multipliers=st.none() | st.just({"Holland Proctor": "2.5"}),
)
def test_order_place_makes_what_order_makes(
    quantity: int, price: str | None, multipliers: dict[str, str] | None
) -> None:
    fields: dict[str, Any] = {
        "order_id": "sig-1",
        "strategy": "STRATEGY_B",
        "instrument": "MINDA",
        "position": "BUY",
        "received_at": AT,
        "accepted_for": ["Holland Proctor"],
        "rejected_for": [{"user": "Kamryn Li", "reason": Reason.INSTRUMENT_NOT_IN_STRATEGY}],
        "reason": None,
        "quantity": quantity,
        "price": price,
        "multipliers": multipliers,
    }
    fast, generic = Order.place(**fields), Order(**fields)
    assert type(fast) is Order
    assert without_timestamps(fast) == without_timestamps(generic)
    assert fast.created_on == fast.modified_on
    (fast_placed,), (generic_placed,) = fast.collect_events(), generic.collect_events()
    assert type(fast_placed) is type(generic_placed) is Order.Placed  # type: ignore[attr-defined]
    assert without_timestamps(fast_placed) == without_timestamps(generic_placed)
    assert fast_placed.timestamp == fast.created_on
    assert fast_placed.mutate(None) == fast


@given(quantity=st.none() | st.integers(1, 10**9), price=PRICES)
def test_book_events_hold_every_field_in_the_dataclass_order_and_nothing_else(
    quantity: int | None, price: str | None
) -> None:
    # Book.book builds them without their dataclass __init__: a field missed, misspelt or out
    # of order would be stored as it is.
    book = Book(user="Holland Proctor", strategy="STRATEGY_B", instruments=INSTRUMENTS)
    book.book("b", "ACC", Position.BUY, AT, quantity, price)
    book.book("s", "ACC", Position.SELL, AT, quantity, price)
    opened, closed = book.collect_events()[1:]
    for built in (opened, closed):
        assert list(vars(built)) == [f.name for f in dataclasses.fields(built)]
    # And they are what their classes' own __init__ makes of the same fields.
    assert opened == type(opened)(**vars(opened))
    assert closed == type(closed)(**vars(closed))


@given(
    instruments=st.lists(st.sampled_from([*INSTRUMENTS, "NTPC"]), max_size=4, unique=True),
    multiplier=st.sampled_from(["1", "3", "0.00000001"]),
)
def test_book_take_up_makes_what_book_makes(instruments: list[str], multiplier: str) -> None:
    fields: dict[str, Any] = {
        "user": "Holland Proctor",
        "strategy": "STRATEGY_B",
        "instruments": instruments,
        "multiplier": multiplier,
    }
    fast, generic = Book.take_up(**fields), Book(**fields)
    assert type(fast) is Book
    assert fast.id == generic.id == Book.create_id("Holland Proctor", "STRATEGY_B")
    assert without_timestamps(fast) == without_timestamps(generic)
    assert fast.created_on == fast.modified_on
    (fast_event,), (generic_event,) = fast.collect_events(), generic.collect_events()
    assert type(fast_event) is type(generic_event) is Book.StrategyTakenUp  # type: ignore[attr-defined]
    assert without_timestamps(fast_event) == without_timestamps(generic_event)
    assert list(vars(fast_event)) == [f.name for f in dataclasses.fields(fast_event)]
    assert fast_event.mutate(None) == fast
