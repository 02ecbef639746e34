"""The service layer: load books, decide orders, save them in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Mapper, Recording, Transcoder

from ledger.answer_cache import AnswerCache
from ledger.answers import OrderAnswer, OrderOutcome, OrderRequest, Profiles
from ledger.domain import Book, Order, Roster, decide
from ledger.overrides import storage as overrides
from ledger.profile_import import ImportReport, import_profiles
from ledger.retries import retrying
from ledger.snapshots import due_snapshots, put_snapshots, save_snapshots
from ledger.store.mapper import LedgerMapper
from ledger.store.recorder import LedgerRecorder
from ledger.store.transcoder import OrjsonTranscoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A decided batch: its events ready to store, and what to answer once they are."""

    requests: list[OrderRequest]
    known: dict[str, OrderAnswer]  # answers already given for some of its ORDER_IDs
    orders: dict[str, Order]  # the orders this batch stores, by ORDER_ID
    batch: overrides.PreparedBatch
    snapshots: list[Any]


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
        self._answers = AnswerCache()

    def construct_transcoder(self) -> Transcoder:
        """orjson, in eventsourcing's JSON format: a stored event decodes to what was saved."""
        transcoder: JSONTranscoder = OrjsonTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def construct_mapper(self) -> Mapper[UUID]:
        """The stock mapper's stored events, written faster (ledger/store/mapper.py)."""
        return self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=LedgerMapper
        )

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """Application.save without its per-object Protocol checks (slow on Python 3.11)."""
        processing_event, recordings = overrides.record(self, objs, kwargs)
        save_snapshots(self, processing_event)
        overrides.notify(self, recordings)
        return recordings

    @property
    def store(self) -> LedgerRecorder:
        """The recorder, with the ledger's own queries."""
        assert isinstance(self.recorder, LedgerRecorder)
        return self.recorder

    # Books and roster

    def roster(self) -> Roster | None:
        """The roster of books as stored, or None before the first import."""
        return self._roster()

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

    def book(self, book_id: UUID) -> Book:
        """One book, from memory or loaded from the store."""
        return self._book(book_id)

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
        """Record the differences between a profile document and the ledger as events."""

        def attempt() -> ImportReport:
            try:
                return import_profiles(self, profiles)
            except IntegrityError:
                raise
            except BaseException:
                self.forget()  # changes applied in memory were not saved
                raise

        return retrying(lambda _: attempt(), self.forget, "profile import")

    def books_changed(self, books: Sequence[Book]) -> None:
        """Keep books just saved, and rebuild the strategy index on next use."""
        for book in books:
            self._books[book.id] = book
        self._by_strategy = None
        self._books_of.clear()

    # Orders

    def place_orders(self, requests: Sequence[OrderRequest]) -> list[OrderOutcome]:
        """Decide the orders in arrival order and commit them all in one transaction."""
        requests = self.with_ids(requests)
        # After a conflict the ORDER_IDs are looked up in the store: the other writer may
        # have stored some of them.
        try:
            return retrying(
                lambda n: self.commit(self.prepare(requests, look_up_ids=n > 0)),
                self.forget,
                f"batch of {len(requests)} orders",
            )
        except BaseException:
            self.forget()  # decided, not stored: the books in memory are not the store's
            raise

    @staticmethod
    def with_ids(requests: Sequence[OrderRequest]) -> list[OrderRequest]:
        """Requests without an ORDER_ID get a fresh one."""
        return [r if r.order_id else replace(r, order_id=str(uuid4())) for r in requests]

    def prepare(self, requests: Sequence[OrderRequest], *, look_up_ids: bool = False) -> Prepared:
        """Decide a batch against the books in memory; its events are ready to store.

        The books already hold the decisions. Should the batch not be stored, forget() them.
        """
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
                orders[order_id] = Order.place(
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
            # Events, stored form and snapshots are taken now: the next batch may change
            # the same books before this one is stored.
            batch = overrides.prepare_batch(
                self, [*touched.values(), *orders.values()], {"expected_versions": expected}
            )
            snapshots = due_snapshots(self, batch.processing_event)
        except BaseException:
            # Pending changes may have been applied in memory without being saved.
            self.forget([b.id for pairs in read.values() for b, _ in pairs])
            raise
        return Prepared(list(requests), known, orders, batch, snapshots)

    def commit(self, prepared: Prepared) -> list[OrderOutcome]:
        """Store a prepared batch in one transaction; the answers, with their sequences."""
        ids = overrides.store_batch(self, prepared.batch)
        put_snapshots(self, prepared.snapshots)
        events = prepared.batch.processing_event.events
        sequences = {e.originator_id: n for e, n in zip(events, ids, strict=True)}
        known, orders = dict(prepared.known), dict(prepared.orders)
        for order_id, order in orders.items():
            answer = OrderAnswer.of(order, sequences.get(order.id))
            known[order_id] = answer
            self._answers.put(order_id, answer)
        outcomes = []
        for request in prepared.requests:
            assert request.order_id is not None
            answer = known[request.order_id]
            reused = not answer.is_for(request.strategy, request.instrument, request.position)
            # Only the first request of an ORDER_ID within a batch stored it.
            stored = orders.pop(request.order_id, None) is not None
            outcomes.append(OrderOutcome(answer, reused_id=reused, stored=stored))
        return outcomes

    def _known_answers(
        self, requests: Sequence[OrderRequest], *, look_up_ids: bool
    ) -> dict[str, OrderAnswer]:
        """Answers already given for the requests' ORDER_IDs (from memory, or from the store)."""
        known: dict[str, OrderAnswer] = {}
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

    def get_order(self, order_id: str) -> OrderAnswer | None:
        """The recorded answer for an order id, or None."""
        cached = self._answers.get(order_id)
        if cached is not None:
            return cached
        record_id = Order.create_id(order_id)
        try:
            order: Any = self.repository.get(record_id)
        except AggregateNotFoundError:
            return None
        assert isinstance(order, Order)
        sequence = self.store.first_notification_ids([record_id]).get(record_id)
        answer = OrderAnswer.of(order, sequence)
        self._answers.put(order_id, answer)
        return answer

    def last_sequence(self) -> int:
        """The highest sequence in the store (0 when empty)."""
        return self.recorder.max_notification_id() or 0
