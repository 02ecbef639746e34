"""The service layer: load books, decide orders, save them in one transaction."""

from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Recording, Transcoder

from ledger.domain import Book, Order, Position, Roster, decide, order_answer
from ledger.store.recorder import LedgerRecorder
from ledger.store.transcoder import OrjsonTranscoder

log = logging.getLogger(__name__)

Profiles = Mapping[str, Mapping[str, Sequence[str]]]
MAX_ATTEMPTS = 10
ANSWER_CACHE_SIZE = 100_000


@dataclass(frozen=True)
class OrderRequest:
    """A well-formed order as the client sent it."""

    strategy: str
    instrument: str
    position: Position
    order_id: str | None = None
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class OrderOutcome:
    """The answer to one request: the order's record, or a refusal of a reused ORDER_ID."""

    answer: dict[str, Any]
    reused_id: bool = False  # the ORDER_ID belongs to a different order


@dataclass
class ImportReport:
    """What an import of the profile file changed."""

    added: list[tuple[str, str]] = field(default_factory=list)
    changed: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    kept_open: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def events(self) -> int:
        """How many book changes the import recorded."""
        return len(self.added) + len(self.changed) + len(self.dropped)


class ConflictRetriesExhausted(IntegrityError):
    """Other writers kept changing the same books; the batch was not saved."""


def _back_off(attempt: int) -> None:
    # Random waits break the lockstep in which two writers keep invalidating each other.
    time.sleep(random.uniform(0, 0.005 * 2**attempt))


def _same_order(answer: Mapping[str, Any], request: OrderRequest) -> bool:
    return (answer["strategy"], answer["instrument"], answer["position"]) == (
        request.strategy,
        request.instrument,
        request.position.value,
    )


class Ledger(Application[UUID]):
    """Books orders for every user who trades the strategy."""

    name = "Ledger"
    # A book's history grows with every order; a snapshot every 100 events keeps loads short.
    snapshotting_intervals = {Book: 100}  # noqa: RUF012 - the base class declares it

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        self._books: dict[UUID, Book] = {}
        self._by_strategy: dict[str, list[UUID]] | None = None
        self._books_of: dict[str, list[Book]] = {}  # strategy -> its loaded books
        self._roster_version = 0
        self._answers: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def construct_transcoder(self) -> Transcoder:
        """orjson, in eventsourcing's JSON format: a stored event decodes to what was saved."""
        transcoder: JSONTranscoder = OrjsonTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """Application.save without its per-object Protocol checks (slow on Python 3.11)."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for aggregate in objs:
            processing_event.events.extend(aggregate.collect_events())
            processing_event.aggregates[aggregate.id] = aggregate
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        try:
            self._snapshot_from_memory(processing_event)
        except Exception as failure:
            log.warning("snapshot not saved (%s); books still load from their events", failure)
        self._notify(recordings)
        return recordings

    def _snapshot_from_memory(self, processing_event: ProcessingEvent[UUID]) -> None:
        # eventsourcing would reload each aggregate from the store to snapshot it; the saved
        # aggregate in memory is that same state, so it is snapshotted as it is.
        if self.snapshots is None:
            return
        due: dict[UUID, Any] = {}
        for domain_event in processing_event.events:
            aggregate = processing_event.aggregates.get(domain_event.originator_id)
            interval = self.snapshotting_intervals.get(type(aggregate))  # type: ignore[arg-type]
            if interval and domain_event.originator_version % interval == 0:
                due[aggregate.id] = aggregate  # type: ignore[union-attr]
        if due:
            self.snapshots.put([Book.Snapshot.take(a) for a in due.values()])

    @property
    def store(self) -> LedgerRecorder:
        """The recorder, with the ledger's own queries."""
        assert isinstance(self.recorder, LedgerRecorder)
        return self.recorder

    # Books and roster

    def _roster(self) -> Roster | None:
        try:
            roster: Any = self.repository.get(Roster.create_id())
        except AggregateNotFoundError:
            return None
        assert isinstance(roster, Roster)
        return roster

    def _index(self) -> dict[str, list[UUID]]:
        if self._by_strategy is None:
            roster = self._roster()
            # The roster is read too: a book another process adds must not go unseen.
            self._roster_version = roster.version if roster else 0
            index: dict[str, list[UUID]] = {}
            for user, strategy in roster.books if roster else []:
                index.setdefault(strategy, []).append(Book.create_id(user, strategy))
            self._by_strategy = index
        return self._by_strategy

    def _book(self, book_id: UUID) -> Book:
        book = self._books.get(book_id)
        if book is None:
            loaded: Any = self.repository.get(book_id)
            assert isinstance(loaded, Book)
            self._books[book_id] = book = loaded
        return book

    def _strategy_books(self, strategy: str) -> list[Book]:
        books = self._books_of.get(strategy)
        if books is None:
            books = [self._book(book_id) for book_id in self._index().get(strategy, [])]
            self._books_of[strategy] = books
        return books

    def forget(self, book_ids: Sequence[UUID] | None = None) -> None:
        """Drop cached books (all when None) so they reload from the store."""
        self._books_of.clear()
        if book_ids is not None:
            for book_id in book_ids:
                self._books.pop(book_id, None)
        else:
            self._books.clear()
            self._by_strategy = None

    def books(self) -> list[Book]:
        """Every book the ledger knows, in roster order."""
        return [self._book(book_id) for ids in self._index().values() for book_id in ids]

    def profiles(self) -> dict[str, dict[str, list[str]]]:
        """The profiles as the ledger knows them, shaped like user_profile.json."""
        result: dict[str, dict[str, list[str]]] = {}
        for book in self.books():
            if book.active:
                result.setdefault(book.user, {})[book.strategy] = list(book.instruments)
        return result

    def import_profiles(self, profiles: Profiles) -> ImportReport:
        """Record the differences between the file and the ledger as events."""
        for attempt in range(MAX_ATTEMPTS):
            try:
                return self._import_profiles(profiles)
            except IntegrityError:
                log.info("profile import raced another writer; reloading")
                self.forget()
                _back_off(attempt)
            except BaseException:
                self.forget()  # changes applied in memory were not saved
                raise
        msg = "profile import kept conflicting with another writer"
        raise ConflictRetriesExhausted(msg)

    def _import_profiles(self, profiles: Profiles) -> ImportReport:
        report = ImportReport()
        roster = self._roster() or Roster()
        known = set(roster.books)
        wanted = {
            (user, strategy): list(dict.fromkeys(instruments))
            for user, strategies in profiles.items()
            for strategy, instruments in strategies.items()
        }
        changed: list[Book] = []
        new_books: list[list[str]] = []
        for (user, strategy), instruments in wanted.items():
            if (user, strategy) not in known:
                changed.append(Book(user=user, strategy=strategy, instruments=instruments))
                new_books.append([user, strategy])
                report.added.append((user, strategy))
                continue
            book = self._book(Book.create_id(user, strategy))
            if not book.active or set(book.instruments) != set(instruments):
                book.change_instruments(instruments=instruments)
                changed.append(book)
                report.changed.append((user, strategy))
        for user, strategy in roster.books:
            if (user, strategy) in wanted:
                continue
            book = self._book(Book.create_id(user, strategy))
            if book.active:
                book.drop()
                changed.append(book)
                report.dropped.append((user, strategy))
        for book in changed:
            for instrument in book.open:
                if instrument not in book.instruments or not book.active:
                    report.kept_open.append((book.user, book.strategy, instrument))
        if new_books:
            roster.add_books(books=new_books)
        if changed or new_books:
            self.save(roster, *changed)
        for book in changed:
            self._books[book.id] = book
        self._by_strategy = None
        self._books_of.clear()
        for user, strategy, instrument in report.kept_open:
            log.warning(
                "profile no longer lists %s/%s/%s but its position is open: kept, SELL closes it",
                user,
                strategy,
                instrument,
            )
        return report

    # Orders

    def place_orders(self, requests: Sequence[OrderRequest]) -> list[OrderOutcome]:
        """Decide the orders in arrival order and commit them all in one transaction."""
        requests = [r if r.order_id else replace(r, order_id=str(uuid4())) for r in requests]
        for attempt in range(MAX_ATTEMPTS):
            try:
                return self._place(requests, look_up_ids=attempt > 0)
            except IntegrityError as conflict:
                log.info("batch of %d conflicted (%s); reloading books", len(requests), conflict)
                self.forget()
                _back_off(attempt)
        msg = f"batch of {len(requests)} orders kept conflicting with another writer"
        raise ConflictRetriesExhausted(msg)

    def _place(self, requests: Sequence[OrderRequest], *, look_up_ids: bool) -> list[OrderOutcome]:
        known = self._known_answers(requests, look_up_ids=look_up_ids)
        orders: dict[str, Order] = {}
        read: dict[str, list[tuple[Book, int]]] = {}  # strategy -> its books as first read
        touched: dict[int, Book] = {}  # keyed by id(): hashing UUIDs is slow in a hot loop
        try:
            for request in requests:
                order_id = request.order_id
                assert order_id is not None
                if order_id in known or order_id in orders:
                    continue
                books = self._strategy_books(request.strategy)
                if request.strategy not in read:
                    read[request.strategy] = [(b, b.version) for b in books]
                versions = [b.version for b in books]
                accepted, rejected, reason = decide(
                    books, order_id, request.instrument, request.position, request.received_at
                )
                for book, version in zip(books, versions, strict=True):
                    if book.version != version:
                        touched[id(book)] = book
                orders[order_id] = Order(
                    order_id=order_id,
                    strategy=request.strategy,
                    instrument=request.instrument,
                    position=request.position.value,
                    received_at=request.received_at,
                    accepted_for=accepted,
                    rejected_for=rejected,
                    reason=reason,
                )
            # Book events first: a reader that has reached an order's sequence has then
            # also passed every book change that order made.
            expected = {b.id: v for pairs in read.values() for b, v in pairs}
            expected[Roster.create_id()] = self._roster_version
            recordings = self.save(*touched.values(), *orders.values(), expected_versions=expected)
        except BaseException:
            # Pending changes may have been applied in memory without being saved.
            self.forget([b.id for pairs in read.values() for b, _ in pairs])
            raise
        sequences = {r.domain_event.originator_id: r.notification.id for r in recordings}
        for order_id, order in orders.items():
            answer = order_answer(order, sequences.get(order.id))
            known[order_id] = answer
            self._remember(order_id, answer)
        return [self._outcome(known, request) for request in requests]

    @staticmethod
    def _outcome(known: Mapping[str, dict[str, Any]], request: OrderRequest) -> OrderOutcome:
        assert request.order_id is not None
        answer = known[request.order_id]
        return OrderOutcome(answer, reused_id=not _same_order(answer, request))

    def _remember(self, order_id: str, answer: dict[str, Any]) -> None:
        self._answers[order_id] = answer
        if len(self._answers) > ANSWER_CACHE_SIZE:
            self._answers.popitem(last=False)

    def _known_answers(
        self, requests: Sequence[OrderRequest], *, look_up_ids: bool
    ) -> dict[str, dict[str, Any]]:
        """Answers already given for the requests' ORDER_IDs (from memory, or from the store)."""
        known: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        for request in requests:
            if request.order_id is None:
                continue
            cached = self._answers.get(request.order_id)
            if cached is not None:
                known[request.order_id] = cached
            else:
                missing.append(request.order_id)
        if look_up_ids and missing:
            for order_id in missing:
                answer = self.get_order(order_id)
                if answer is not None:
                    known[order_id] = answer
        return known

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        """The recorded answer for an order id, or None."""
        if order_id in self._answers:
            return self._answers[order_id]
        record_id = Order.create_id(order_id)
        try:
            order: Any = self.repository.get(record_id)
        except AggregateNotFoundError:
            return None
        assert isinstance(order, Order)
        sequence = self.store.first_notification_ids([record_id]).get(record_id)
        answer = order_answer(order, sequence)
        self._remember(order_id, answer)
        return answer

    def last_sequence(self) -> int:
        """The highest sequence in the store (0 when empty)."""
        return self.recorder.max_notification_id() or 0
