"""Microseconds per book event, per order and per stored event: eventsourcing's generic path
and the ledger's fast one (Book.book, Order.place, LedgerMapper, save_sequences).

    .venv/bin/python bench/events.py [--out bench/bench_events.json]
"""

from __future__ import annotations

import argparse
import json
import random
import timeit
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    Mapper,
    Notification,
    Recording,
    UUIDAsHex,
)

from ledger.domain import Book, Order, Position, Reason, decide
from ledger.store.mapper import LedgerMapper
from ledger.store.transcoder import OrjsonTranscoder
from tests.support import book_by_decorators

AT = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
INSTRUMENTS = ["GRASIM", "INFY", "MINDA", "ACC", "NTPC"]


def best_us(func: Callable[[], Any], per_call: int, number: int = 20_000, repeat: int = 7) -> float:
    """Best of `repeat` runs, in microseconds per event."""
    return min(timeit.repeat(func, number=number, repeat=repeat)) / number / per_call * 1e6


@contextmanager
def generic_booking() -> Iterator[None]:
    fast = Book.book
    Book.book = book_by_decorators  # type: ignore[method-assign]
    try:
        yield
    finally:
        Book.book = fast  # type: ignore[method-assign]


def book_cycle(book: Book) -> Callable[[], None]:
    """One BUY and one SELL: two events."""

    def cycle() -> None:
        book.book("b", "ACC", Position.BUY, AT)
        book.book("s", "ACC", Position.SELL, AT)
        book.pending_events.clear()

    return cycle


def new_order(place: bool) -> Order:
    return (Order.place if place else Order)(
        order_id="sig-1",
        strategy="STRATEGY_B",
        instrument="MINDA",
        position="BUY",
        received_at=AT,
        accepted_for=["Holland Proctor", "A. User"],
        rejected_for=[{"user": "Kamryn Li", "reason": Reason.INSTRUMENT_NOT_IN_STRATEGY}],
        reason=None,
    )


def transcoder() -> OrjsonTranscoder:
    coder = OrjsonTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        coder.register(transcoding)
    return coder


def sample_events() -> list[Any]:
    book = Book(user="Holland Proctor", strategy="STRATEGY_B", instruments=INSTRUMENTS)
    book.book("b", "ACC", Position.BUY, AT)
    book.book("s", "ACC", Position.SELL, AT)
    return [*book.collect_events()[1:], *new_order(place=True).collect_events()]


def stored_with_recording(mapper: Mapper[Any], domain_event: Any) -> Any:
    """What EventStore.put does per event besides the insert: StoredEvent, then Recording."""
    s = mapper.to_stored_event(domain_event)
    return Recording(
        domain_event,
        Notification(
            originator_id=s.originator_id,
            originator_version=s.originator_version,
            topic=s.topic,
            state=s.state,
            id=1,
        ),
    )


def writer_cycle(users: int, fast: bool) -> tuple[Callable[[], None], Callable[[], int]]:
    """The writer's in-process work per order: decide for every user, build and map events."""
    books = [
        Book(user=f"user {n}", strategy="S", instruments=random.Random(n).sample(INSTRUMENTS, 3))
        for n in range(users)
    ]
    mapper: Mapper[Any] = (LedgerMapper if fast else Mapper)(transcoder=transcoder())
    rng = random.Random(1)
    orders = [(rng.choice(INSTRUMENTS), rng.choice(list(Position))) for _ in range(1000)]
    events = 0
    n = 0

    def one_order() -> None:
        nonlocal n, events
        instrument, position = orders[n % len(orders)]
        n += 1
        booked, rejected, reason = decide(books, str(n), instrument, position, AT)
        accepted = [b.user for b in booked]
        new = Order.place if fast else Order
        order = new(str(n), "S", instrument, position.value, AT, accepted, rejected, reason)
        pending = [e for b in books for e in b.collect_events()] + list(order.collect_events())
        events += len(pending)
        if fast:
            [mapper.to_stored_event(e) for e in pending]
        else:
            [stored_with_recording(mapper, e) for e in pending]

    return one_order, lambda: events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    results: dict[str, float] = {}
    book = Book(user="Holland Proctor", strategy="STRATEGY_B", instruments=INSTRUMENTS)
    with generic_booking():
        results["book event, generic (@event methods)"] = best_us(book_cycle(book), 2)
    results["book event, fast (Book.book)"] = best_us(book_cycle(book), 2)
    results["order created, generic (Order(...))"] = best_us(lambda: new_order(False), 1)
    results["order created, fast (Order.place)"] = best_us(lambda: new_order(True), 1)
    stock, fast = Mapper(transcoder=transcoder()), LedgerMapper(transcoder=transcoder())
    for event in sample_events():
        name = type(event).__qualname__
        results[f"stored {name}, stock Mapper"] = best_us(
            lambda e=event: stock.to_stored_event(e), 1
        )
        results[f"stored {name}, stock Mapper + Recording"] = best_us(
            lambda e=event: stored_with_recording(stock, e), 1
        )
        results[f"stored {name}, LedgerMapper"] = best_us(
            lambda e=event: fast.to_stored_event(e), 1
        )
    for users in (2, 20):
        for label, is_fast in (("generic", False), ("fast", True)):
            context: AbstractContextManager[None] = nullcontext() if is_fast else generic_booking()
            with context:
                one_order, events = writer_cycle(users, is_fast)
                per_order = best_us(one_order, 1, number=2_000)
                results[f"writer CPU per order, {users} users, {label}"] = per_order
                results[f"  events per order, {users} users"] = events() / (2_000 * 7)
    width = max(map(len, results))
    for label, value in results.items():
        print(f"{label:<{width}}  {value:7.2f}{'' if label.startswith('  ') else ' µs'}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
