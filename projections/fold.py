"""The positions rule on the read side: order events folded into open positions and trades.

One pure function, used by the projection, by positions as of a past sequence, and by the
tests as their oracle.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.domain import Position, Rejection

Key = tuple[str, str, str]  # (user, strategy, instrument)


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

    @classmethod
    def from_event(cls, event: Any, sequence: int) -> PlacedOrder:
        """Take the fields of a stored Placed event."""
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
        )


@dataclass(frozen=True, slots=True)
class Opened:
    """How a position was opened: its BUY order."""

    order_id: str
    at: datetime
    sequence: int


@dataclass(frozen=True, slots=True)
class Closed:
    """A position closed by a SELL: one trade."""

    key: Key
    buy: Opened
    sell: Opened

    @property
    def sequences(self) -> tuple[int, int]:
        """The sequences of the BUY and of the SELL."""
        return self.buy.sequence, self.sell.sequence


class BrokenRule(Exception):
    """The orders break the positions rule: a BUY of an open position, a SELL of none."""


def fold(orders: Iterable[PlacedOrder], open_: MutableMapping[Key, Opened]) -> list[Closed]:
    """Apply orders, in sequence order, to the open positions; return the trades they close.

    A BUY booked for a user opens (user, strategy, instrument); a SELL booked for them closes
    it. Orders refused for a user change nothing for that user. Orders that break that rule
    raise BrokenRule: the fold was given an incomplete or corrupt history.
    """
    closed: list[Closed] = []
    for order in orders:
        at = Opened(order.order_id, order.received_at, order.sequence)
        buy = order.position == Position.BUY
        for user in order.accepted_for:
            key = (user, order.strategy, order.instrument)
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
