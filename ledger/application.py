"""The service layer: load books, decide orders, save them in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Mapper, Recording, Transcoder

from ledger import batch
from ledger.answer_cache import AnswerCache
from ledger.answers import OrderAnswer, OrderRequest, Profiles
from ledger.batch import Outcome, Prepared, Request
from ledger.domain import Book, Order, Roster
from ledger.overrides import storage as overrides
from ledger.profile_import import ImportReport, import_profiles
from ledger.retries import retrying
from ledger.snapshots import catch_up_roster, put_snapshots, save_snapshots
from ledger.store.bulk import load_many
from ledger.store.mapper import LedgerMapper
from ledger.store.recorder import LedgerRecorder
from ledger.store.transcoder import OrjsonTranscoder
from ledger.user_answers import entry

log = logging.getLogger(__name__)


class Ledger(Application[UUID]):
    """Books orders for every user who trades the strategy."""

    name = "Ledger"
    # A book's history grows with every order; a snapshot every 100 events keeps loads short.
    snapshotting_intervals = {Book: 100}  # noqa: RUF012 - the base class declares it

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        self._books: dict[UUID, Book] = {}
        self._by_strategy: dict[str, list[UUID]] | None = None
        self._by_user: dict[str, list[str]] = {}  # user -> strategies, as the roster lists them
        self._books_of: dict[str, list[Book]] = {}  # strategy -> its loaded books
        self._roster_held: Roster | None = None  # as read, plus the changes decided since
        self._cold: list[UUID] | None = None  # books warm_up has yet to look at
        self._urgent: list[str] = []  # strategies whose orders wait for warm_up (load_next)
        self._urgent_left = 0  # books of _urgent still in _cold (they are popped first)
        self._warm = False  # warm_up found every book in memory since forget()
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
            # The roster is read too: a book another process adds must not go unseen.
            self._roster_held = roster = self._roster()
            index: dict[str, list[UUID]] = {}
            self._by_user = {}
            for user, strategy in roster.books if roster else []:
                index.setdefault(strategy, []).append(Book.create_id(user, strategy))
                self._by_user.setdefault(user, []).append(strategy)
            self._by_strategy = index
        return self._by_strategy

    def catch_up_roster_snapshot(self) -> int | None:
        """Snapshot the roster as held if reading it replayed over a tenth of its events."""
        try:
            self._index()
            return catch_up_roster(self, self._roster_held)
        except Exception as failure:  # the database may be down at a start: not needed to run
            log.warning("roster snapshot not checked (%s)", failure)
            return None

    def roster_version(self) -> int:
        """The roster's version as held (0 before the first book): what a batch expects."""
        self._index()
        return self._roster_held.version if self._roster_held else 0

    def held_roster(self) -> Roster:
        """The roster as held, to add books to (a new one before the first book)."""
        self._index()
        if self._roster_held is None:
            self._roster_held = Roster()
        return self._roster_held

    def strategies_of(self, user: str) -> list[str]:
        """The strategies the roster has a book of `user` for (dropped ones included)."""
        self._index()
        return list(self._by_user.get(user, ()))

    def book_keys(self) -> list[tuple[str, str]]:
        """Every (user, strategy) of the roster."""
        self._index()
        return list(self._roster_held.books) if self._roster_held else []

    def took_up(self, books: Sequence[Book]) -> None:
        """Index new books (their events not stored yet: a failed batch forgets them)."""
        index = self._index()
        for book in books:
            self._books[book.id] = book
            index.setdefault(book.strategy, []).append(book.id)
            self._by_user.setdefault(book.user, []).append(book.strategy)
            loaded = self._books_of.get(book.strategy)
            if loaded is not None:
                loaded.append(book)

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

    def books_for(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Book]:
        """The books of (user, strategy) keys, those not in memory loaded together."""
        # One by one, a cold writer took ~30 s to change 90,000 books: a query per book.
        ids = [Book.create_id(user, strategy) for user, strategy in keys]
        return dict(zip(keys, self._loaded(ids), strict=True))

    def strategy_books(self, strategy: str) -> list[Book]:
        """The books of a strategy, loaded (dropped ones included: they may hold positions)."""
        books = self._books_of.get(strategy)
        if books is None:
            books = self._loaded(self._index().get(strategy, []))
            self._books_of[strategy] = books
        return books

    def _loaded(self, book_ids: Sequence[UUID]) -> list[Book]:
        """Books from memory, those not in it loaded together (ledger/store/bulk.py)."""
        missing = [book_id for book_id in book_ids if book_id not in self._books]
        if missing:
            self._books.update(load_many(self, missing))
        return [self._books[book_id] for book_id in book_ids]

    @property
    def held(self) -> int:
        """Books in memory."""
        return len(self._books)

    @property
    def warm(self) -> bool:
        """Whether warm_up has nothing to do: every book loaded since the last forget() or
        change of the books (which make it start again)."""
        return self._warm

    @property
    def waited_for(self) -> bool:
        """Whether orders wait for warm_up to load a strategy's books (load_next)."""
        return bool(self._urgent)

    def warm_up(self, limit: int, strategies: Callable[[str], bool] | None = None) -> int:
        """Load up to `limit` books not in memory, biggest strategies first; 0 once all are.

        Only the books of `strategies` (all when None). After a failure the next call lists
        the books again: those of the failed step were taken off the list, not loaded.
        """
        try:
            loaded = self._warm_step(limit, strategies)
        except BaseException:
            self._cold = None
            raise
        if loaded == 0 and limit:
            self._warm, self._cold, self._urgent = True, None, []
        return loaded

    def _warm_step(self, limit: int, strategies: Callable[[str], bool] | None) -> int:
        if self._cold is None:
            index = self._index()
            chosen = [s for s in index if strategies is None or strategies(s)]
            order = sorted(chosen, key=lambda s: (s in self._urgent, len(index[s])), reverse=True)
            self._cold = [i for s in reversed(order) for i in reversed(index[s])]  # popped
            self._urgent_left = sum(len(index[s]) for s in chosen if s in self._urgent)
        chunk: list[UUID] = []
        popped = 0
        while self._cold and len(chunk) < limit:
            book_id = self._cold.pop()
            popped += 1
            if book_id not in self._books:
                chunk.append(book_id)
        if chunk:
            self._loaded(chunk)
        self._urgent_left -= popped
        if self._urgent_left <= 0:
            self._urgent.clear()  # what orders waited for is loaded
        return len(chunk)

    def unloaded(self, strategy: str) -> int:
        """How many of the strategy's books are not in memory (0 while the roster is not
        held: counting would read it, and the caller may not wait for the database)."""
        if strategy in self._books_of or self._by_strategy is None:
            return 0
        return sum(1 for i in self._by_strategy.get(strategy, ()) if i not in self._books)

    def load_next(self, strategy: str) -> None:
        """Have warm_up load this strategy's books before any other's, also after forget()."""
        if strategy not in self._urgent:
            self._urgent.append(strategy)
            self._cold = None  # listed again, urgent strategies first

    def forget(self, book_ids: Sequence[UUID] | None = None) -> None:
        """Drop cached books (all when None) so they reload from the store."""
        self._books_of.clear()
        self._cold, self._warm = None, False
        if book_ids is not None:
            for book_id in book_ids:
                self._books.pop(book_id, None)
        else:
            self._books.clear()
            self._by_strategy = None
            self._roster_held = None

    def books(self) -> list[Book]:
        """Every book the ledger knows, in roster order."""
        return self._loaded([book_id for ids in self._index().values() for book_id in ids])

    def profiles(self) -> Profiles:
        """The profiles as the ledger knows them, shaped like user_profile.json."""
        result: Profiles = {}
        for book in self.books():
            if book.active:
                result.setdefault(book.user, {})[book.strategy] = entry(
                    book.instruments, book.multiplier
                )
        return result

    def import_profiles(self, profiles: Profiles, file_digest: str | None = None) -> ImportReport:
        """Record the differences between a profile document and the ledger as events.

        With the digest of the file it came from, nothing is done if that file was the last
        imported (see ledger.profile_import).
        """

        def attempt() -> ImportReport:
            try:
                return import_profiles(self, profiles, file_digest)
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
        self._roster_held = None
        self._books_of.clear()
        self._cold, self._warm = None, False  # new books, or another process's: load them

    # Orders

    def place_orders(
        self, requests: Sequence[Request], *, slice_books: int | None = None
    ) -> list[Outcome]:
        """Decide orders and changes in arrival order and commit them in one transaction
        (a change of more than `slice_books` books only in part: see prepare)."""
        requests = self.with_ids(requests)
        # After a conflict the ORDER_IDs are looked up in the store: the other writer may
        # have stored some of them.
        try:
            return retrying(
                lambda n: self.commit(
                    self.prepare(requests, look_up_ids=n > 0, slice_books=slice_books)
                ),
                self.forget,
                f"batch of {len(requests)} requests",
            )
        except BaseException:
            self.forget()  # decided, not stored: the books in memory are not the store's
            raise

    @staticmethod
    def with_ids(requests: Sequence[Request]) -> list[Request]:
        """Orders without an ORDER_ID get a fresh one."""
        return [
            replace(r, order_id=str(uuid4()))
            if isinstance(r, OrderRequest) and not r.order_id
            else r
            for r in requests
        ]

    def prepare(
        self,
        requests: Sequence[Request],
        *,
        look_up_ids: bool = False,
        slice_books: int | None = None,
    ) -> Prepared:
        """Decide a batch against the books in memory (see ledger.batch); forget() if unsaved.

        A change of more than `slice_books` books is decided in part: its outcome's `rest`
        is the request for the others (None: every change whole).
        """
        return batch.prepare(self, requests, look_up_ids=look_up_ids, slice_books=slice_books)

    def commit(self, prepared: Prepared, *, snapshots: bool = True) -> list[Outcome]:
        """Store a prepared batch in one transaction; the answers, with their sequences."""
        return batch.commit(self, prepared, snapshots=snapshots)

    def store_snapshots(self, prepared: Prepared) -> None:
        """Store the snapshots a committed batch made due (a failure is only logged)."""
        put_snapshots(self, prepared.snapshots)

    def remember(self, order_id: str, answer: OrderAnswer) -> None:
        """Keep an order's answer for a retry of its ORDER_ID."""
        self._answers.put(order_id, answer)

    def known_answers(
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
