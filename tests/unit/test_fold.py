"""The positions rule on the read side, against a tiny model of the ledger's books."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.amounts import canonical
from ledger.domain import Position, Reason, Rejection
from projections.fold import BrokenRule, Closed, Key, Opened, PlacedOrder, fold, text

USERS = ("u0", "u1", "u2")
STRATEGIES = ("S1", "S2")
INSTRUMENTS = ("I1", "I2", "I3")
START = datetime(2025, 1, 2, 9, 15, tzinfo=UTC)

# A trade as the model sees it: (key, BUY order id, BUY sequence, SELL order id, SELL sequence,
# booked quantity, entry price, exit price, realised P&L), the numbers as exact Fractions.
Trade = tuple[Key, str, int, str, int, Fraction, Fraction | None, Fraction | None, Fraction | None]
# An open position as the model sees it: (BUY order id, its sequence, booked quantity, price).
Open = tuple[str, int, Fraction, Fraction | None]


def amounts(most: str) -> st.SearchStrategy[str]:
    """Exact decimals as the write side spells them: up to 12 digits, a point and 8 more."""
    return st.decimals(Decimal("0.00000001"), Decimal(most), places=8).map(canonical)


PRICES = st.none() | st.sampled_from(["100", "101.5", "99.25"]) | amounts("999999999999.99999999")
MULTIPLIERS = st.sampled_from(["1", "1", "2", "0.5", "3.25"]) | amounts("1000")
QUANTITIES = st.sampled_from([1, 1, 2, 7]) | st.integers(1, 10**9)


@dataclass
class Stream:
    """Orders as the ledger would have decided them, and what the model says they leave."""

    orders: list[PlacedOrder]
    open_: dict[Key, Open]
    trades: list[Trade]


# Each user's instruments in each strategy; an empty list stands for a strategy not taken up.
BOOKS = st.fixed_dictionaries(
    {(u, s): st.frozensets(st.sampled_from(INSTRUMENTS)) for u in USERS for s in STRATEGIES}
)
WANTED = st.lists(
    st.tuples(
        st.sampled_from(STRATEGIES),
        st.sampled_from(INSTRUMENTS),
        st.sampled_from([Position.BUY.value, Position.SELL.value]),
        # Events that are not orders (profiles, books) sit between orders in the store.
        st.integers(min_value=1, max_value=3),
        QUANTITIES,
        PRICES,
    ),
    max_size=30,
)


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    """A few users with random instrument lists, and random orders decided for them."""
    books = {book: instruments for book, instruments in draw(BOOKS).items() if instruments}
    multiplier = {book: draw(MULTIPLIERS) for book in books}
    wanted = draw(WANTED)
    open_: dict[Key, Open] = {}
    trades: list[Trade] = []
    orders: list[PlacedOrder] = []
    sequence = 0
    for n, (strategy, instrument, position, gap, quantity, price) in enumerate(wanted):
        sequence += gap
        order_id = f"o{n}"
        accepted: list[str] = []
        rejected: list[Rejection] = []
        for user in USERS:
            key = (user, strategy, instrument)
            if (user, strategy) not in books:
                continue
            if position == Position.BUY:
                if instrument not in books[user, strategy]:
                    rejected.append({"user": user, "reason": Reason.INSTRUMENT_NOT_IN_STRATEGY})
                elif key in open_:
                    rejected.append({"user": user, "reason": Reason.ALREADY_OPEN})
                else:
                    accepted.append(user)
                    booked = quantity * Fraction(multiplier[user, strategy])
                    open_[key] = (order_id, sequence, booked, fraction(price))
            elif key in open_:
                accepted.append(user)
                buy_id, buy_sequence, booked, entry = open_.pop(key)
                exit_ = fraction(price)
                pnl = None if entry is None or exit_ is None else (exit_ - entry) * booked
                trades.append(
                    (key, buy_id, buy_sequence, order_id, sequence, booked, entry, exit_, pnl)
                )
            else:
                rejected.append({"user": user, "reason": Reason.NO_OPEN_POSITION})
        concerned = accepted or rejected
        orders.append(
            PlacedOrder(
                sequence=sequence,
                order_id=order_id,
                strategy=strategy,
                instrument=instrument,
                position=position,
                received_at=START + timedelta(seconds=sequence),
                accepted_for=accepted,
                rejected_for=rejected,
                reason=None if concerned else Reason.UNKNOWN_STRATEGY.value,
                quantity=quantity,
                price=price,
                multipliers={
                    user: m for (user, s), m in multiplier.items() if s == strategy and m != "1"
                },
            )
        )
    return Stream(orders, open_, trades)


def fraction(value: str | Decimal | None) -> Fraction | None:
    """The model's numbers: Fractions, exact whatever the Decimal context."""
    return None if value is None else Fraction(value)


def _trades(closed: list[Closed]) -> list[Trade]:
    return [
        (c.key, c.buy.order_id, c.buy.sequence, c.sell.order_id, c.sell.sequence,
         Fraction(c.quantity), fraction(c.buy.price), fraction(c.sell.price),
         fraction(c.realised_pnl))
        for c in closed
    ]  # fmt: skip


def _open(open_: dict[Key, Opened]) -> dict[Key, Open]:
    return {
        key: (o.order_id, o.sequence, Fraction(o.quantity), fraction(o.price))
        for key, o in open_.items()
    }


def _chunks(orders: list[PlacedOrder], cuts: list[int]) -> list[list[PlacedOrder]]:
    points = [0, *sorted(c % (len(orders) + 1) for c in cuts), len(orders)]
    return [orders[a:b] for a, b in pairwise(points)]


@settings(max_examples=100, deadline=None)
@given(stream=streams(), cuts=st.lists(st.integers(min_value=0), max_size=5))
def test_fold_agrees_with_the_model(stream: Stream, cuts: list[int]) -> None:
    open_: dict[Key, Opened] = {}
    closed = fold(stream.orders, open_)
    assert _open(open_) == stream.open_
    assert _trades(closed) == stream.trades  # each SELL paired with its BUY, in order
    assert all(c.buy.sequence < c.sell.sequence for c in closed)
    sells = [c.sell.sequence for c in closed]
    assert sells == sorted(sells)
    for opened in open_.values():
        assert opened.at == START + timedelta(seconds=opened.sequence)
    # Shown as the write side spells its decimals: no exponent, no trailing zeros.
    for c in closed:
        for value in (c.quantity, c.buy.price, c.sell.price, c.realised_pnl):
            shown = text(value)
            assert shown is None or (shown == canonical(Decimal(shown)) and "E" not in shown)
            assert (shown is None) == (value is None) and fraction(shown) == fraction(value)

    # The projection folds a page at a time into the same open positions.
    in_chunks: dict[Key, Opened] = {}
    closed_in_chunks = [
        trade for chunk in _chunks(stream.orders, cuts) for trade in fold(chunk, in_chunks)
    ]
    assert closed_in_chunks == closed
    assert in_chunks == open_

    # Orders refused for everyone are in the log, but leave the positions as they were.
    booked: dict[Key, Opened] = {}
    assert fold([o for o in stream.orders if o.accepted_for], booked) == closed
    assert booked == open_


@settings(max_examples=100, deadline=None)
@given(stream=streams(), user=st.sampled_from(USERS))
def test_orders_that_break_the_rule_raise(stream: Stream, user: str) -> None:
    open_: dict[Key, Opened] = {}
    fold(stream.orders, open_)
    last = stream.orders[-1].sequence if stream.orders else 0
    for strategy in STRATEGIES:
        for instrument in INSTRUMENTS:
            key = (user, strategy, instrument)
            side = Position.BUY if key in open_ else Position.SELL  # the side the rule forbids
            broken = PlacedOrder(
                sequence=last + 1,
                order_id="broken",
                strategy=strategy,
                instrument=instrument,
                position=side.value,
                received_at=START,
                accepted_for=[user],
                rejected_for=[],
                reason=None,
            )
            with pytest.raises(BrokenRule, match="broken"):
                fold([broken], dict(open_))  # folding in pages is the same as all at once
            # The same order refused for that user is only a line in the order log.
            why = Reason.ALREADY_OPEN if side is Position.BUY else Reason.NO_OPEN_POSITION
            refused = replace(broken, accepted_for=[], rejected_for=[{"user": user, "reason": why}])
            after = dict(open_)
            assert fold([refused], after) == []
            assert after == open_


def test_events_stored_before_quantities_read_as_one_at_an_unknown_price() -> None:
    old = SimpleNamespace(
        order_id="o", strategy="S1", instrument="I1", position="BUY", received_at=START,
        accepted_for=["u0"], rejected_for=[], reason=None,
    )  # fmt: skip
    placed = PlacedOrder.from_event(old, 7)
    assert (placed.quantity, placed.price, placed.multipliers) == (1, None, {})
    open_: dict[Key, Opened] = {}
    fold([placed], open_)
    assert (open_["u0", "S1", "I1"].quantity, open_["u0", "S1", "I1"].price) == (Decimal(1), None)
