"""One writer batch: orders and changes decided in arrival order, stored in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import ProcessingEvent

from ledger import changes
from ledger.amounts import canonical
from ledger.answers import OrderAnswer, OrderOutcome, OrderRequest
from ledger.domain import Book, Order, Roster
from ledger.overrides import storage as overrides
from ledger.rules import decide, multipliers
from ledger.snapshots import due_snapshots, put_snapshots
from ledger.user_answers import ChangeAnswer, ChangeOutcome, ChangeRequest

if TYPE_CHECKING:
    from ledger.application import Ledger

Request = OrderRequest | ChangeRequest
Outcome = OrderOutcome | ChangeOutcome


@dataclass(frozen=True)
class Prepared:
    """A decided batch: its events ready to store, and what to answer once they are."""

    requests: list[Request]
    known: dict[str, OrderAnswer]  # answers already given for some of its ORDER_IDs
    orders: dict[str, Order]  # the orders this batch stores, by ORDER_ID
    batch: overrides.PreparedBatch
    snapshots: list[Any]
    # request index -> its decision, and the index of its last event (None: it wrote nothing)
    changes: dict[int, tuple[changes.Decided, int | None]] = field(default_factory=dict)


class _Events:
    """The batch's events in the order they are stored; each order after what it saw."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.aggregates: dict[UUID, Any] = {}
        self.touched: dict[int, Book] = {}  # keyed by id(): hashing UUIDs is slow in a hot loop
        self.orders: list[Order] = []

    def add(self, aggregates: Sequence[Any]) -> None:
        for aggregate in aggregates:
            self.events.extend(aggregate.collect_events())
            self.aggregates[aggregate.id] = aggregate

    def flush(self) -> None:
        """Store what the orders so far did: their books' events first, then the orders.

        A reader that has reached an order's sequence has then also passed every book change
        that order made; a change comes after the orders decided before it and before those
        decided after it, so an order's sequence tells which side of a change it is on.
        """
        self.add(list(self.touched.values()))
        self.add(self.orders)
        self.touched.clear()
        self.orders = []


def _processing_event(
    events: list[Any], aggregates: dict[UUID, Any], expected: dict[UUID, int]
) -> ProcessingEvent[UUID]:
    """What store_batch takes: the events in their order, their aggregates, the versions read."""
    processing_event: ProcessingEvent[UUID] = ProcessingEvent()
    processing_event.events.extend(events)
    processing_event.aggregates.update(aggregates)
    processing_event.saved_kwargs["expected_versions"] = expected
    return processing_event


def _prepared(ledger: Ledger, out: _Events, expected: dict[UUID, int]) -> overrides.PreparedBatch:
    """The events in their order, mapped to their stored form, for overrides.store_batch."""
    stored = list(map(ledger.mapper.to_stored_event, out.events))
    return overrides.PreparedBatch(_processing_event(out.events, out.aggregates, expected), stored)


def prepare(
    ledger: Ledger, requests: Sequence[Request], *, look_up_ids: bool, slice_books: int | None
) -> Prepared:
    """Decide a batch against the books in memory; its events are ready to store.

    The books already hold the decisions. Should the batch not be stored, forget() them.
    A change of more than `slice_books` books decides that many; its outcome's `rest` is the
    request for the others.
    """
    orders_only = [r for r in requests if isinstance(r, OrderRequest)]
    known = ledger.known_answers(orders_only, look_up_ids=look_up_ids)
    orders: dict[str, Order] = {}
    decided: dict[int, tuple[changes.Decided, int | None]] = {}
    read: dict[str, list[tuple[Book, int]]] = {}  # strategy -> its books as first read
    changed_read: dict[UUID, int] = {}  # books a change read, at the version it read
    out = _Events()
    roster_version = ledger.roster_version()
    try:
        for n, request in enumerate(requests):
            if isinstance(request, ChangeRequest):
                out.flush()
                change = changes.decide(ledger, request, slice_books)
                for book, version in change.read:
                    changed_read.setdefault(book.id, version)
                out.add(change.aggregates)
                decided[n] = (change, len(out.events) - 1 if change.aggregates else None)
                continue
            order_id = request.order_id
            assert order_id is not None
            if order_id in known or order_id in orders:
                continue
            books = ledger.strategy_books(request.strategy)
            if request.strategy not in read:
                read[request.strategy] = [(b, b.version) for b in books]
            price = None if request.price is None else canonical(request.price)
            booked, rejected, reason = decide(
                books,
                order_id,
                request.instrument,
                request.position,
                request.received_at,
                request.asked_quantity,
                price,
            )
            touched = out.touched
            for book in booked:  # in decide(), a book changes only by booking
                touched[id(book)] = book
            accepted = [book.user for book in booked]
            orders[order_id] = order = Order.place(
                order_id=order_id,
                strategy=request.strategy,
                instrument=request.instrument,
                position=request.position.value,
                received_at=request.received_at,
                accepted_for=accepted,
                rejected_for=rejected,
                reason=reason,
                quantity=request.quantity,
                price=price,
                multipliers=multipliers(books, accepted),
                quantity_given=request.quantity_given_if_sell,
            )
            out.orders.append(order)
        out.flush()
        expected = {b.id: v for pairs in read.values() for b, v in pairs}
        for book_id, version in changed_read.items():
            expected.setdefault(book_id, version)
        expected[Roster.create_id()] = roster_version
        # Events, stored form and snapshots are taken now: the next batch may change the
        # same books before this one is stored.
        batch = _prepared(ledger, out, expected)
        snapshots = due_snapshots(ledger, batch.processing_event)
    except BaseException:
        # Pending changes may have been applied in memory without being saved; a change may
        # have added books to the roster and its indexes: then everything is reloaded.
        ledger.forget(None if decided else [b.id for pairs in read.values() for b, _ in pairs])
        raise
    return Prepared(list(requests), known, orders, batch, snapshots, decided)


def merged(first: Prepared, then: Prepared) -> Prepared:
    """Two batches decided one after the other, as one batch stored in one transaction.

    `then` was decided on top of `first` in memory: a book both read is expected at the
    version `first` read (the store's), as the stale check compares before either is stored.
    """
    offset, events_before = len(first.requests), len(first.batch.processing_event.events)
    changes = dict(first.changes)
    for n, (change, last) in then.changes.items():
        changes[offset + n] = (change, None if last is None else events_before + last)
    before, after = first.batch.processing_event, then.batch.processing_event
    processing_event = _processing_event(
        before.events + after.events,
        {**before.aggregates, **after.aggregates},
        {**after.saved_kwargs["expected_versions"], **before.saved_kwargs["expected_versions"]},
    )
    stored = first.batch.stored_events + then.batch.stored_events
    return Prepared(
        first.requests + then.requests,
        {**first.known, **then.known},
        {**first.orders, **then.orders},
        overrides.PreparedBatch(processing_event, stored),
        first.snapshots + then.snapshots,
        changes,
    )


def commit(ledger: Ledger, prepared: Prepared, *, snapshots: bool = True) -> list[Outcome]:
    """Store a prepared batch in one transaction, then its snapshots unless told not to (the
    writer stores them after answering); the answers, with their sequences."""
    ids = overrides.store_batch(ledger, prepared.batch)
    if snapshots:
        put_snapshots(ledger, prepared.snapshots)
    events = prepared.batch.processing_event.events
    # Only the orders' sequences are answered: hashing every book event's UUID (Python code)
    # cost a 5,000-user order ~1 ms.
    placed = Order.Placed  # type: ignore[attr-defined]
    sequences = {e.originator_id: n for e, n in zip(events, ids, strict=True) if type(e) is placed}
    known, orders = dict(prepared.known), dict(prepared.orders)
    for order_id, order in orders.items():
        answer = OrderAnswer.of(order, sequences.get(order.id))
        known[order_id] = answer
        ledger.remember(order_id, answer)
    outcomes: list[Outcome] = []
    for n, request in enumerate(prepared.requests):
        if isinstance(request, ChangeRequest):
            change, last = prepared.changes[n]
            sequence = ids[last] if last is not None else None
            books = change.changes
            if sequence is not None:
                books = [replace(book, sequence=sequence) for book in books]
            answer_ = ChangeAnswer(change.unchanged, sequence, request.dry_run, books)
            outcomes.append(ChangeOutcome(answer_, stored=last is not None, rest=change.rest))
            continue
        assert request.order_id is not None
        answer = known[request.order_id]
        reused = not answer.is_for(request)
        # Only the first request of an ORDER_ID within a batch stored it.
        stored = orders.pop(request.order_id, None) is not None
        outcomes.append(OrderOutcome(answer, reused_id=reused, stored=stored))
    return outcomes
