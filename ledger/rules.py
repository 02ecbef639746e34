"""The vocabulary of the rules: sides, reasons, outcomes, and deciding an order for its books."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from typing_extensions import TypedDict

from ledger.amounts import ONE

if TYPE_CHECKING:
    from ledger.domain import Book


class Position(StrEnum):
    """The side of an order."""

    BUY = "BUY"
    SELL = "SELL"


class Reason(StrEnum):
    """Why an order was not booked."""

    INSTRUMENT_NOT_IN_STRATEGY = "INSTRUMENT_NOT_IN_STRATEGY"
    ALREADY_OPEN = "ALREADY_OPEN"
    NO_OPEN_POSITION = "NO_OPEN_POSITION"
    UNKNOWN_STRATEGY = "UNKNOWN_STRATEGY"
    QUANTITY_MISMATCH = "QUANTITY_MISMATCH"


class Outcome(StrEnum):
    """The answer to an order: booked for at least one user, or for nobody."""

    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"

    @classmethod
    def of(cls, accepted_for: list[str]) -> Outcome:
        """ACCEPTED when booked for at least one user."""
        return cls.ACCEPTED if accepted_for else cls.REJECTED


class Rejection(TypedDict):
    """One user the order was not booked for, and why."""

    user: str
    reason: Reason


class Lot(TypedDict):
    """An open position's size: the BUY's quantity, the user's booked quantity, its price."""

    order_quantity: int
    quantity: str  # order_quantity times the book's multiplier, an exact decimal
    price: str | None


class OrderRefused(Exception):
    """An order is not valid for one book."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.value)
        self.reason = reason


def decide(
    books: list[Book],
    order_id: str,
    instrument: str,
    position: Position,
    at: datetime,
    quantity: int | None = None,
    price: str | None = None,
) -> tuple[list[Book], list[Rejection], Reason | None]:
    """Book the order in every concerned book; return (the books it was booked in,
    rejected_for, reason)."""
    concerned = [b for b in books if b.concerned]
    if not concerned:
        return [], [], Reason.UNKNOWN_STRATEGY
    booked: list[Book] = []
    rejected: list[Rejection] = []
    for book in concerned:
        try:
            book.book(order_id, instrument, position, at, quantity, price)
        except OrderRefused as refused:
            rejected.append({"user": book.user, "reason": refused.reason})
        else:
            booked.append(book)
    return booked, rejected, None


def multipliers(books: list[Book], accepted: list[str]) -> dict[str, str] | None:
    """The accepted users' multipliers that are not 1 (Order.Placed's), None when all are."""
    scaled = {b.user: b.multiplier for b in books if b.multiplier != ONE}
    if not scaled:
        return None
    return {user: scaled[user] for user in accepted if user in scaled} or None
