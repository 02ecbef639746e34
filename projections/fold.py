"""The positions rule on the read side: order events folded into open positions and trades.

One pure function, used by the projection, by positions as of a past sequence, and by the
tests as their oracle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded
from typing import Any

from ledger.amounts import canonical, order_numbers
from ledger.domain import Position, Rejection

Key = tuple[str, str, str]  # (user, strategy, instrument)
ONE = Decimal(1)
# Quantities, prices and P&L are exact: an operation that would round raises instead.
EXACT = Context(prec=100_000, traps=[Inexact, Rounded, InvalidOperation])


def decimal(text: str | None) -> Decimal | None:
    """An exact decimal string as a Decimal; None stays None (an unknown price)."""
    return None if text is None else Decimal(text)


def text(value: Decimal | None) -> str | None:
    """A Decimal in the ledger's one spelling (ledger.amounts.canonical); None stays None."""
    if value is None:
        return None
    return canonical(value.copy_abs() if value.is_zero() else value)  # never "-0"


def pnl(entry: Decimal | None, exit_: Decimal | None, quantity: Decimal) -> Decimal | None:
    """Realised P&L of a closed position: (exit - entry) x quantity; None if a price is unknown."""
    if entry is None or exit_ is None:
        return None
    return EXACT.multiply(EXACT.subtract(exit_, entry), quantity)


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """What the read models need from one Order.Placed event."""

    sequence: int
    order_id: str
    strategy: str
    instrument: str
    position: str
    received_at: datetime
    accepted_for: list[str]
    rejected_for: list[Rejection]
    reason: str | None
    quantity: int = 1
    price: str | None = None  # as the order gave it; None: unknown
    multipliers: Mapping[str, str] = field(default_factory=dict)  # users whose isn't 1

    @classmethod
    def from_event(cls, event: Any, sequence: int) -> PlacedOrder:
        """Take the fields of a stored Placed event (one stored before quantities too)."""
        quantity, price, multipliers = order_numbers(event)
        return cls(
            sequence=sequence,
            order_id=event.order_id,
            strategy=event.strategy,
            instrument=event.instrument,
            position=event.position,
            received_at=event.received_at,
            accepted_for=list(event.accepted_for),
            rejected_for=list(event.rejected_for),
            reason=event.reason,
            quantity=quantity,
            price=price,
            multipliers=multipliers or {},
        )

    def booked(self, user: str) -> Decimal:
        """The quantity booked for a user: the order's, times the user's multiplier."""
        multiplier = self.multipliers.get(user)
        quantity = Decimal(self.quantity)
        return quantity if multiplier is None else EXACT.multiply(quantity, Decimal(multiplier))


def decisions(order: PlacedOrder) -> int:
    """How many users an order was decided for: what its share of a view write costs."""
    return len(order.accepted_for) + len(order.rejected_for)


@dataclass(frozen=True, slots=True)
class Opened:
    """How a position was opened: its BUY order, the quantity booked and the entry price."""

    order_id: str
    at: datetime
    sequence: int
    quantity: Decimal = ONE
    price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Closed:
    """A position closed by a SELL: one trade. `sell` carries the SELL's (exit) price."""

    key: Key
    buy: Opened
    sell: Opened

    @property
    def sequences(self) -> tuple[int, int]:
        """The sequences of the BUY and of the SELL."""
        return self.buy.sequence, self.sell.sequence

    @property
    def quantity(self) -> Decimal:
        """A SELL closes the whole position: the quantity its BUY booked."""
        return self.buy.quantity

    @property
    def realised_pnl(self) -> Decimal | None:
        """(exit - entry) x quantity, exact; None when either price is unknown."""
        return pnl(self.buy.price, self.sell.price, self.buy.quantity)


class BrokenRule(Exception):
    """The orders break the positions rule: a BUY of an open position, a SELL of none."""


def fold(orders: Iterable[PlacedOrder], open_: MutableMapping[Key, Opened]) -> list[Closed]:
    """Apply orders, in sequence order, to the open positions; return the trades they close.

    A BUY booked for a user opens (user, strategy, instrument) with the quantity booked for
    them; a SELL booked for them closes it whole. Orders refused for a user change nothing
    for that user. Orders that break that rule raise BrokenRule: the fold was given an
    incomplete or corrupt history.
    """
    closed: list[Closed] = []
    for order in orders:
        # One Opened shared by every user the order was booked for at the order's quantity:
        # an order fanned out to thousands of users makes one object, not thousands.
        plain = Opened(
            order.order_id,
            order.received_at,
            order.sequence,
            ONE if order.quantity == 1 else Decimal(order.quantity),
            decimal(order.price),
        )
        buy = order.position == Position.BUY
        for user in order.accepted_for:
            key = (user, order.strategy, order.instrument)
            at = replace(plain, quantity=order.booked(user)) if user in order.multipliers else plain
            if buy:
                if key in open_:
                    msg = f"order {order.order_id} opens {key}, which is open already"
                    raise BrokenRule(msg)
                open_[key] = at
                continue
            try:
                closed.append(Closed(key, open_.pop(key), at))
            except KeyError:
                msg = f"order {order.order_id} closes {key}, which is not open"
                raise BrokenRule(msg) from None
    return closed
