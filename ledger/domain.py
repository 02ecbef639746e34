"""The rules of the ledger: per-user strategy books, the roster of books, and orders."""

from __future__ import annotations

import sys
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event
from eventsourcing.domain import Snapshot as StoredSnapshot
from eventsourcing.utils import get_topic

from ledger.amounts import ONE, booked, order_numbers
from ledger.overrides.aggregates import new_aggregate, new_event
from ledger.rules import Lot, OrderRefused, Outcome, Position, Reason, Rejection, decide

# Importable from here too; the aggregates stay in this module: their stored events name it.
__all__ = [
    "NAMESPACE",
    "SEP",
    "Book",
    "Order",
    "OrderRefused",
    "Outcome",
    "Position",
    "Reason",
    "Rejection",
    "Roster",
    "decide",
    "order_numbers",
]

NAMESPACE = UUID("6f1c8a52-3b0e-4f4e-9a51-2c7d3e8b9a10")
SEP = "\x1f"  # unit separator: cannot occur in a valid name (control characters are refused)


@lru_cache(maxsize=1024)
def shared_lot(order_quantity: int, quantity: str, price: str | None) -> Lot:
    """One Lot object for equal sizes: never changed, and one order opens it in many books.

    Measured with tracemalloc at 10,000 users x 9 strategies: a Lot of its own per position
    was ~35 MB of the writer's ~285 (a dict and its quantity's text per open position).
    """
    return Lot(order_quantity=order_quantity, quantity=quantity, price=price)


class Book(Aggregate):
    """One user's book in one strategy: the instruments traded and the open positions."""

    @staticmethod
    def create_id(user: str, strategy: str) -> UUID:
        """Deterministic id, so any process finds the same book."""
        return uuid5(NAMESPACE, f"book{SEP}{user}{SEP}{strategy}")

    # Version 2 added multiplier and sizes; a snapshot of version 1 is upcast on load. The
    # defaults of the @event methods replay the events stored before quantities.
    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A snapshot taken before quantities: every open position is 1 at an unknown price."""
        state["multiplier"] = ONE
        state["sizes"] = {i: Lot(order_quantity=1, quantity=ONE, price=None) for i in state["open"]}

    @event("StrategyTakenUp")
    def __init__(
        self, user: str, strategy: str, instruments: list[str], multiplier: str = ONE
    ) -> None:
        self.user = sys.intern(user)  # interned: 90,000 books in memory repeat few names
        self.strategy = sys.intern(strategy)
        self.instruments = [sys.intern(i) for i in instruments]
        self.active = True
        self.open: dict[str, str] = {}  # instrument -> id of the BUY order that opened it
        self.multiplier = multiplier  # an exact decimal: booked quantity = quantity x this
        self.sizes: dict[str, Lot] = {}  # instrument -> the size of its open position

    @classmethod
    def take_up(
        cls, user: str, strategy: str, instruments: list[str], multiplier: str = ONE
    ) -> Book:
        """Book(...) without eventsourcing's generic dispatch: the same StrategyTakenUp event.

        A profile document of 10,000 users x 9 strategies takes up 90,000 books in one
        request; the generic path cost ~1.5 s of it.
        """
        fields: dict[str, Any] = {
            "user": user,
            "strategy": strategy,
            "instruments": instruments,
            "multiplier": multiplier,
        }
        taken_up = _TAKEN_UP(
            originator_id=cls.create_id(user, strategy),
            originator_version=cls.INITIAL_VERSION,
            timestamp=_TAKEN_UP.create_timestamp(),
            originator_topic=get_topic(cls),
            **fields,
        )
        book: Book = new_aggregate(cls, taken_up, fields)
        return book

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

    def check_sell(self, instrument: str, quantity: int | None = None) -> None:
        """A SELL needs an open position (of the BUY's quantity, when it gives one)."""
        if instrument in self.open:
            # It may close a position whose instrument left the list; never only part of one.
            lot = self.sizes.get(instrument)
            if quantity is not None and quantity != (lot["order_quantity"] if lot else 1):
                raise OrderRefused(Reason.QUANTITY_MISMATCH)
            return
        if not self.active or instrument not in self.instruments:
            raise OrderRefused(Reason.INSTRUMENT_NOT_IN_STRATEGY)
        raise OrderRefused(Reason.NO_OPEN_POSITION)

    def check(self, instrument: str, position: Position, quantity: int | None = None) -> None:
        """Raise OrderRefused when the order is not valid for this book."""
        if position is Position.BUY:
            self.check_buy(instrument)
        else:
            self.check_sell(instrument, quantity)

    def book(
        self,
        order_id: str,
        instrument: str,
        position: Position,
        at: datetime,
        quantity: int | None = None,
        price: str | None = None,
    ) -> None:
        """Book a valid order, or raise OrderRefused; quantity None: BUY 1, SELL what is open."""
        self.check(instrument, position, quantity)
        # The hot path: the very events open_position() and close_position() trigger, built
        # here because eventsourcing's generic @event dispatch costs ~8-13 µs an event and
        # this ~1.4 (bench/events.py). Each change below is the body of its @event method,
        # which is what replays the stored event.
        # Built without the events' dataclass __init__ (new_event), fields in their order:
        # it is the order their stored JSON follows.
        version = self._version + 1
        if position is Position.BUY:
            size = quantity or 1
            lot = shared_lot(size, booked(size, self.multiplier), price)
            happened = new_event(
                _POSITION_OPENED,
                {
                    "originator_id": self._id,
                    "originator_version": version,
                    "timestamp": _POSITION_OPENED.create_timestamp(),
                    "instrument": instrument,
                    "order_id": order_id,
                    "at": at,
                    "quantity": lot["quantity"],
                    "order_quantity": size,
                    "price": price,
                },
            )
            self.open[instrument] = order_id
            self.sizes[instrument] = lot
        else:
            held = self.sizes.pop(instrument, None)
            happened = new_event(
                _POSITION_CLOSED,
                {
                    "originator_id": self._id,
                    "originator_version": version,
                    "timestamp": _POSITION_CLOSED.create_timestamp(),
                    "instrument": instrument,
                    "order_id": order_id,
                    "buy_order_id": self.open[instrument],
                    "at": at,
                    "quantity": held["quantity"] if held else ONE,
                    "price": price,
                    "entry_price": held["price"] if held else None,
                },
            )
            del self.open[instrument]
        # As trigger_event and mutate() would advance it (their attributes, not properties).
        self._version = version
        self._modified_on = happened.timestamp
        self._pending_events.append(happened)

    @event("PositionOpened")
    def open_position(
        self,
        instrument: str,
        order_id: str,
        at: datetime,
        quantity: str = ONE,
        order_quantity: int = 1,
        price: str | None = None,
    ) -> None:
        self.open[instrument] = order_id  # book() makes the same changes
        self.sizes[instrument] = shared_lot(order_quantity, quantity, price)

    @event("PositionClosed")
    def close_position(
        self,
        instrument: str,
        order_id: str,
        buy_order_id: str,
        at: datetime,
        quantity: str = ONE,
        price: str | None = None,
        entry_price: str | None = None,
    ) -> None:
        del self.open[instrument]  # book() makes the same changes
        self.sizes.pop(instrument, None)

    @event("InstrumentsChanged")
    def change_instruments(self, instruments: list[str], multiplier: str = ONE) -> None:
        self.instruments = [sys.intern(i) for i in instruments]
        self.multiplier = multiplier
        self.active = True

    @event("StrategyDropped")
    def drop(self) -> None:
        self.active = False


# The classes eventsourcing defines from the @event methods (so mypy cannot see them), as
# Book.book() builds their events itself.
_POSITION_OPENED: type[Any] = vars(Book)["PositionOpened"]
_POSITION_CLOSED: type[Any] = vars(Book)["PositionClosed"]
_TAKEN_UP: type[Any] = vars(Book)["StrategyTakenUp"]


class Roster(Aggregate):
    """Every (user, strategy) book the ledger has, so a process can find them all."""

    class Snapshot(StoredSnapshot):
        """The roster at a version; its books come back as the tuples its events make."""

        def mutate(self, _: None) -> Roster:
            """The roster as snapshotted (JSON keeps each book as a list)."""
            roster = super().mutate(_)
            assert isinstance(roster, Roster)
            roster.books = [(user, strategy) for user, strategy in roster.books]
            return roster

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
        quantity: int = 1,
        price: str | None = None,
        multipliers: dict[str, str] | None = None,
        quantity_given: bool | None = None,
    ) -> None:
        self.order_id = order_id
        self.strategy = strategy
        self.instrument = instrument
        self.position = position
        self.received_at = received_at
        self.accepted_for = accepted_for
        self.rejected_for = rejected_for
        self.reason = reason
        self.quantity = quantity  # 1 for a SELL that gave none (it closed what was open)
        self.price = price  # an exact decimal; None: not given
        self.multipliers = multipliers  # accepted users whose multiplier is not 1; else None
        # Whether a SELL gave its QUANTITY (without one it closes whatever is open): a retry
        # of its ORDER_ID must ask the same. None for a BUY, and for a SELL stored before.
        self.quantity_given = quantity_given

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
        quantity: int = 1,
        price: str | None = None,
        multipliers: dict[str, str] | None = None,
        quantity_given: bool | None = None,
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
            "quantity": quantity,
            "price": price,
            "multipliers": multipliers,
            "quantity_given": quantity_given,
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
