"""The rules of the ledger: per-user strategy books, the roster of books, and orders."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic
from typing_extensions import TypedDict

from ledger.overrides.aggregates import new_aggregate

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
        # The hot path: the very events open_position() and close_position() trigger, built
        # here because eventsourcing's generic @event dispatch costs ~9-13 µs an event and
        # this ~2.5 (bench/events.py). Each change below is the body of its @event method,
        # which is what replays the stored event.
        if position is Position.BUY:
            opened = _POSITION_OPENED(
                originator_id=self.id,
                originator_version=self.version + 1,
                timestamp=_POSITION_OPENED.create_timestamp(),
                instrument=instrument,
                order_id=order_id,
                at=at,
            )
            self.open[instrument] = order_id
            self._happened(opened)
        else:
            closed = _POSITION_CLOSED(
                originator_id=self.id,
                originator_version=self.version + 1,
                timestamp=_POSITION_CLOSED.create_timestamp(),
                instrument=instrument,
                order_id=order_id,
                buy_order_id=self.open[instrument],
                at=at,
            )
            del self.open[instrument]
            self._happened(closed)

    def _happened(self, new_event: Aggregate.Event) -> None:
        """Advance to an event already applied, as trigger_event and mutate() would."""
        self.version = new_event.originator_version
        self.modified_on = new_event.timestamp
        self.pending_events.append(new_event)

    @event("PositionOpened")
    def open_position(self, instrument: str, order_id: str, at: datetime) -> None:
        self.open[instrument] = order_id  # book() makes the same change

    @event("PositionClosed")
    def close_position(
        self, instrument: str, order_id: str, buy_order_id: str, at: datetime
    ) -> None:
        del self.open[instrument]  # book() makes the same change

    @event("InstrumentsChanged")
    def change_instruments(self, instruments: list[str]) -> None:
        self.instruments = list(instruments)
        self.active = True

    @event("StrategyDropped")
    def drop(self) -> None:
        self.active = False


# The classes eventsourcing defines from the @event methods (so mypy cannot see them), as
# Book.book() builds their events itself.
_POSITION_OPENED: type[Any] = vars(Book)["PositionOpened"]
_POSITION_CLOSED: type[Any] = vars(Book)["PositionClosed"]


class Roster(Aggregate):
    """Every (user, strategy) book the ledger has, so a process can find them all."""

    @staticmethod
    def create_id() -> UUID:
        """There is one roster per store."""
        return uuid5(NAMESPACE, "roster")

    @event("Started")
    def __init__(self) -> None:
        self.books: list[tuple[str, str]] = []
        self.file_digest = ""  # of the profile file last imported; "" before the first

    @event("BooksAdded")
    def add_books(self, books: list[list[str]]) -> None:
        self.books.extend((user, strategy) for user, strategy in books)

    @event("FileImported")
    def file_imported(self, digest: str) -> None:
        # Remembered so that a restart with the same file leaves changes made since alone.
        self.file_digest = digest


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

    @classmethod
    def place(
        cls,
        order_id: str,
        strategy: str,
        instrument: str,
        position: str,
        received_at: datetime,
        accepted_for: list[str],
        rejected_for: list[Rejection],
        reason: str | None,
    ) -> Order:
        """Order(...) without eventsourcing's generic dispatch: the same Placed event."""
        fields: dict[str, Any] = {
            "order_id": order_id,
            "strategy": strategy,
            "instrument": instrument,
            "position": position,
            "received_at": received_at,
            "accepted_for": accepted_for,
            "rejected_for": rejected_for,
            "reason": reason,
        }
        placed = _PLACED(
            originator_id=cls.create_id(order_id),
            originator_version=cls.INITIAL_VERSION,
            timestamp=_PLACED.create_timestamp(),
            originator_topic=get_topic(cls),
            **fields,
        )
        order: Order = new_aggregate(cls, placed, fields)
        return order

    @property
    def response(self) -> Outcome:
        """ACCEPTED when booked for at least one user."""
        return Outcome.of(self.accepted_for)


_PLACED: type[Any] = vars(Order)["Placed"]  # as for Book, so that Order.place() builds it


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
