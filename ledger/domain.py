"""The rules of the ledger: per-user strategy books, the roster of books, and orders."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event
from typing_extensions import TypedDict

# Fixed namespace so that ids are the same in every process and after every restart.
NAMESPACE = UUID("6f1c8a52-3b0e-4f4e-9a51-2c7d3e8b9a10")
SEP = "\x1f"  # unit separator: cannot occur in a valid name (control characters are refused)


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


class OrderRefused(Exception):
    """An order is not valid for one book."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.value)
        self.reason = reason


class Book(Aggregate):
    """One user's book in one strategy: the instruments traded and the open positions."""

    @staticmethod
    def create_id(user: str, strategy: str) -> UUID:
        """Deterministic id, so any process finds the same book."""
        return uuid5(NAMESPACE, f"book{SEP}{user}{SEP}{strategy}")

    @event("StrategyTakenUp")
    def __init__(self, user: str, strategy: str, instruments: list[str]) -> None:
        self.user = user
        self.strategy = strategy
        self.instruments = list(instruments)
        self.active = True
        self.open: dict[str, str] = {}  # instrument -> id of the BUY order that opened it

    @property
    def concerned(self) -> bool:
        """A dropped strategy still answers orders while it has open positions to close."""
        return self.active or bool(self.open)

    def check_buy(self, instrument: str) -> None:
        """A BUY needs the instrument in the strategy and no open position."""
        if not self.active or instrument not in self.instruments:
            raise OrderRefused(Reason.INSTRUMENT_NOT_IN_STRATEGY)
        if instrument in self.open:
            raise OrderRefused(Reason.ALREADY_OPEN)

    def check_sell(self, instrument: str) -> None:
        """A SELL needs an open position; it may close one whose instrument left the list."""
        if instrument in self.open:
            return
        if not self.active or instrument not in self.instruments:
            raise OrderRefused(Reason.INSTRUMENT_NOT_IN_STRATEGY)
        raise OrderRefused(Reason.NO_OPEN_POSITION)

    def check(self, instrument: str, position: Position) -> None:
        """Raise OrderRefused when the order is not valid for this book."""
        if position is Position.BUY:
            self.check_buy(instrument)
        else:
            self.check_sell(instrument)

    def book(self, order_id: str, instrument: str, position: Position, at: datetime) -> None:
        """Book a valid order, or raise OrderRefused and change nothing."""
        self.check(instrument, position)
        if position is Position.BUY:
            self.open_position(instrument=instrument, order_id=order_id, at=at)
        else:
            self.close_position(
                instrument=instrument,
                order_id=order_id,
                buy_order_id=self.open[instrument],
                at=at,
            )

    @event("PositionOpened")
    def open_position(self, instrument: str, order_id: str, at: datetime) -> None:
        self.open[instrument] = order_id

    @event("PositionClosed")
    def close_position(
        self, instrument: str, order_id: str, buy_order_id: str, at: datetime
    ) -> None:
        del self.open[instrument]

    @event("InstrumentsChanged")
    def change_instruments(self, instruments: list[str]) -> None:
        self.instruments = list(instruments)
        self.active = True

    @event("StrategyDropped")
    def drop(self) -> None:
        self.active = False


class Roster(Aggregate):
    """Every (user, strategy) book the ledger has, so a process can find them all."""

    @staticmethod
    def create_id() -> UUID:
        """There is one roster per store."""
        return uuid5(NAMESPACE, "roster")

    @event("Started")
    def __init__(self) -> None:
        self.books: list[tuple[str, str]] = []

    @event("BooksAdded")
    def add_books(self, books: list[list[str]]) -> None:
        self.books.extend((user, strategy) for user, strategy in books)


class Order(Aggregate):
    """One order as received, with every concerned user's decision."""

    @staticmethod
    def create_id(order_id: str) -> UUID:
        """The id follows the client's ORDER_ID, so a retry finds the first record."""
        return uuid5(NAMESPACE, f"order{SEP}{order_id}")

    @event("Placed")
    def __init__(
        self,
        order_id: str,
        strategy: str,
        instrument: str,
        position: str,
        received_at: datetime,
        accepted_for: list[str],
        rejected_for: list[Rejection],
        reason: str | None,
    ) -> None:
        self.order_id = order_id
        self.strategy = strategy
        self.instrument = instrument
        self.position = position
        self.received_at = received_at
        self.accepted_for = accepted_for
        self.rejected_for = rejected_for
        self.reason = reason

    @property
    def response(self) -> Outcome:
        """ACCEPTED when booked for at least one user."""
        return Outcome.of(self.accepted_for)


def decide(
    books: list[Book], order_id: str, instrument: str, position: Position, at: datetime
) -> tuple[list[str], list[Rejection], Reason | None]:
    """Book the order in every concerned book; return (accepted_for, rejected_for, reason)."""
    concerned = [b for b in books if b.concerned]
    if not concerned:
        return [], [], Reason.UNKNOWN_STRATEGY
    accepted: list[str] = []
    rejected: list[Rejection] = []
    for book in concerned:
        try:
            book.book(order_id, instrument, position, at)
        except OrderRefused as refused:
            rejected.append({"user": book.user, "reason": refused.reason})
        else:
            accepted.append(book.user)
    return accepted, rejected, None
