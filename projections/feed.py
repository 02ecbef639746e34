"""The live feed: stored events turned into stream events (order, position, profile)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import orjson
from eventsourcing.utils import get_topic
from sse_starlette import ServerSentEvent

from ledger.amounts import ONE, closed_numbers, multiplier_of, opened_numbers
from ledger.answers import LoggedOrder, PositionChange, ProfileChange
from ledger.domain import Book, Order, Roster
from projections.fold import decimal, pnl, text

Kind = Literal["order", "position", "profile"]
KINDS: tuple[Kind, ...] = ("order", "position", "profile")

# Every event the feed reads from the store. Roster events make no stream event: they only
# teach the feed which user and strategy a new book belongs to.
_PLACED: Any = Order.Placed  # type: ignore[attr-defined]
_OPENED: Any = Book.PositionOpened  # type: ignore[attr-defined]
_CLOSED: Any = Book.PositionClosed  # type: ignore[attr-defined]
_TAKEN_UP: Any = Book.StrategyTakenUp  # type: ignore[attr-defined]
_CHANGED: Any = Book.InstrumentsChanged  # type: ignore[attr-defined]
_DROPPED: Any = Book.StrategyDropped  # type: ignore[attr-defined]
_BOOKS_ADDED: Any = Roster.BooksAdded  # type: ignore[attr-defined]
# Each stored event the stream reads, and the kind of stream event it becomes (None: it
# only tells the feed who owns which book).
KIND_OF: dict[str, Kind | None] = {
    get_topic(_PLACED): "order",
    get_topic(_OPENED): "position",
    get_topic(_CLOSED): "position",
    get_topic(_TAKEN_UP): "profile",
    get_topic(_CHANGED): "profile",
    get_topic(_DROPPED): "profile",
    get_topic(_BOOKS_ADDED): None,
}
TOPICS = tuple(KIND_OF)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of the stream, framed once for every subscriber, with what filters look at."""

    sequence: int
    kind: Kind
    frame: bytes  # the whole SSE message: id, event and data lines
    users: frozenset[str]
    strategy: str
    instrument: str | None  # None for profile changes, which no instrument filter hides


@dataclass(frozen=True, slots=True)
class StreamFilter:
    """Which events a subscriber wants; None lets everything through."""

    users: frozenset[str] | None = None
    strategies: frozenset[str] | None = None
    instruments: frozenset[str] | None = None
    kinds: frozenset[Kind] | None = None

    @property
    def everything(self) -> bool:
        """Whether no filter is given."""
        return (
            self.users is None
            and self.strategies is None
            and self.instruments is None
            and self.kinds is None
        )

    def matches(self, event: StreamEvent) -> bool:
        """Whether the event passes every filter given."""
        return self.wants(event.kind, event.users, event.strategy, event.instrument)

    def wants(
        self, kind: Kind, users: Iterable[str], strategy: str, instrument: str | None
    ) -> bool:
        """Whether an event of this kind, users, strategy and instrument passes every filter."""
        return (
            (self.kinds is None or kind in self.kinds)
            and (self.strategies is None or strategy in self.strategies)
            and (self.users is None or not self.users.isdisjoint(users))
            and (self.instruments is None or instrument is None or instrument in self.instruments)
        )

    def topics(self) -> tuple[str, ...]:
        """The stored events' topics that can pass the kinds filter (and the roster's, which
        name the owners of books)."""
        if self.kinds is None:
            return TOPICS
        return tuple(t for t in TOPICS if KIND_OF[t] in self.kinds or KIND_OF[t] is None)


def frame(sequence: int, kind: Kind, data: Any) -> bytes:
    """The SSE message (sse-starlette's framing) of one event."""
    text = orjson.dumps(data).decode()
    return ServerSentEvent(data=text, event=kind, id=str(sequence)).encode()


class Feed:
    """Translates the ledger's stored events; knows which user and strategy each book is."""

    def __init__(self, roster: Callable[[], Iterable[tuple[str, str]]]) -> None:
        self._roster = roster  # (user, strategy) of every book, as stored now
        self._books: dict[UUID, tuple[str, str]] = {}

    def _learn(self, books: Iterable[tuple[str, str] | list[str]]) -> None:
        for user, strategy in books:
            self._books[Book.create_id(user, strategy)] = (user, strategy)

    def owner(self, book_id: UUID) -> tuple[str, str]:
        """(user, strategy) of a book; the roster is read again for a book not seen yet."""
        found = self._books.get(book_id)
        if found is None:
            self._learn(self._roster())
            found = self._books[book_id]
        return found

    def translate(
        self, domain_event: Any, sequence: int, want: StreamFilter | None = None
    ) -> StreamEvent | None:
        """The stream event of one stored event, or None for those the stream does not show
        (and, given `want`, those it does not match: never framed, which costs the most)."""
        match domain_event:
            case _PLACED():
                users = [
                    *domain_event.accepted_for,
                    *(r["user"] for r in domain_event.rejected_for),
                ]
                strategy, instrument = domain_event.strategy, domain_event.instrument
                if want is not None and not want.wants("order", users, strategy, instrument):
                    return None
                order = logged_order(domain_event, sequence)
                return StreamEvent(
                    sequence,
                    "order",
                    frame(sequence, "order", order),
                    frozenset(users),
                    strategy,
                    instrument,
                )
            case _OPENED() | _CLOSED():
                user, strategy = self.owner(domain_event.originator_id)
                instrument = domain_event.instrument
                if want is not None and not want.wants("position", (user,), strategy, instrument):
                    return None
                change = position_change(domain_event, user, strategy)
                return StreamEvent(
                    sequence,
                    "position",
                    frame(sequence, "position", change),
                    frozenset((user,)),
                    strategy,
                    instrument,
                )
            case _TAKEN_UP():
                self._learn([(domain_event.user, domain_event.strategy)])
                user, strategy = domain_event.user, domain_event.strategy
                if want is not None and not want.wants("profile", (user,), strategy, None):
                    return None
                return self._profile(
                    sequence, user, strategy, "taken_up", domain_event.instruments,
                    multiplier_of(domain_event),
                )  # fmt: skip
            case _CHANGED():
                # A book taken up again after a drop is stored as a change too: so it streams.
                user, strategy = self.owner(domain_event.originator_id)
                if want is not None and not want.wants("profile", (user,), strategy, None):
                    return None
                return self._profile(
                    sequence, user, strategy, "changed", domain_event.instruments,
                    multiplier_of(domain_event),
                )  # fmt: skip
            case _DROPPED():
                user, strategy = self.owner(domain_event.originator_id)
                if want is not None and not want.wants("profile", (user,), strategy, None):
                    return None
                return self._profile(sequence, user, strategy, "dropped", [], ONE)
            case _BOOKS_ADDED():
                self._learn(domain_event.books)
                return None
            case _:
                return None

    @staticmethod
    def _profile(
        sequence: int,
        user: str,
        strategy: str,
        change: Literal["taken_up", "changed", "dropped"],
        instruments: list[str],
        multiplier: str,
    ) -> StreamEvent:
        data = ProfileChange(user, strategy, change, list(instruments), multiplier)
        return StreamEvent(
            sequence,
            "profile",
            frame(sequence, "profile", data),
            frozenset((user,)),
            strategy,
            None,
        )


def position_change(event: Any, user: str, strategy: str) -> PositionChange:
    """A PositionOpened or PositionClosed event as the stream shows it, with its numbers."""
    entry: str | None = None
    realised: str | None = None
    if isinstance(event, _OPENED):
        quantity, _, price = opened_numbers(event)
    else:
        quantity, price, entry = closed_numbers(event)
        realised = text(pnl(decimal(entry), decimal(price), Decimal(quantity)))
    return PositionChange(
        user=user,
        strategy=strategy,
        instrument=event.instrument,
        order_id=event.order_id,
        action="opened" if isinstance(event, _OPENED) else "closed",
        at=event.at,
        quantity=quantity,
        price=price,
        entry_price=entry,
        realised_pnl=realised,
    )


def logged_order(placed: Any, sequence: int) -> LoggedOrder:
    """An order's answer as POST /order gave it, with when it was received."""
    return LoggedOrder.of(placed, sequence, received_at=placed.received_at)


# Most bytes of frames joined into one write to a subscriber: uvicorn waits for the client
# before a write, not during one, so a bigger write would sit whole in the socket's buffer.
WRITE = 64 * 1024


def in_writes(events: list[StreamEvent], limit: int = WRITE) -> Iterator[tuple[int, bytes]]:
    """The events' frames joined into writes of at most `limit` bytes (a bigger frame alone),
    each with the sequence of its last event.

    A write holds whole frames only: sse_starlette's heartbeat goes out between two writes,
    so a frame cut in slices could have a ping comment land inside its data line.
    """
    start, size = 0, 0
    for n, event in enumerate(events):
        if size and size + len(event.frame) > limit:
            yield events[n - 1].sequence, b"".join([e.frame for e in events[start:n]])
            start, size = n, 0
        size += len(event.frame)
    if size:
        yield events[-1].sequence, b"".join([e.frame for e in events[start:]])


def shared_writes(events: list[StreamEvent]) -> list[StreamEvent]:
    """The events as the writes of a subscriber who wants them all, joined once for every
    such subscriber (each write a StreamEvent with its last event's sequence)."""
    # Joined per subscriber, 500 streams took an order fanned out to 10,000 users (~2.5 MB
    # of frames) 500 times over, on the loop that answers orders: 5 s answers, +300 MB.
    return [
        StreamEvent(sequence, events[-1].kind, frames, frozenset(), "", None)
        for sequence, frames in in_writes(events)
    ]
