"""The pipelined writer on real PostgreSQL: a failed commit takes nothing decided after it along."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent
from psycopg import sql

from ledger import snapshots
from ledger import writer as writer_module
from ledger.answers import OrderRequest
from ledger.application import Ledger
from ledger.domain import Book, Position
from ledger.store.database import Database
from ledger.store.recorder import StaleRead, unwritten, writers_key
from ledger.user_answers import ChangeRequest, Scope
from ledger.wire import WriterUnavailable
from ledger.writer import Writer


class TableHold:
    """The writers' lock held by another connection, until released."""

    def __init__(self, database: Database, ledger: Ledger) -> None:
        self.url = database.url
        self.key = writers_key(database.schema, ledger.store.events_table_name)
        self.locked, self.released = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold)

    def _hold(self) -> None:
        # A real wait: the lock writers take; the writer waits out its lock_timeout.
        with psycopg.connect(self.url) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.key,))
            self.locked.set()
            self.released.wait(timeout=60)

    async def take(self) -> None:
        """Hold the lock from now on."""
        self.thread.start()
        await asyncio.to_thread(self.locked.wait, 30)

    async def until_a_commit_waits(self) -> None:
        """Until a writer's commit waits on the lock."""
        await asyncio.to_thread(until, self._a_commit_waits)

    def _a_commit_waits(self) -> bool:
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND wait_event = 'advisory' AND query LIKE %s",
                ("%_append%",),  # the writers' append function (ledger.store.recorder)
            ).fetchone()
        return bool(row and row[0])

    def release(self) -> None:
        """Let the lock go."""
        self.released.set()
        if self.thread.is_alive():
            self.thread.join()


def until(condition: Callable[[], bool]) -> None:
    """Poll a condition until it holds (30 s at most)."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.fixture
def hold(database: Database, ledger: Ledger) -> Iterator[TableHold]:
    """A hold on the events table, released at the end whatever happened."""
    table_hold = TableHold(database, ledger)
    yield table_hold
    table_hold.release()


def test_a_batch_decided_on_a_failed_commit_is_decided_again(
    ledger: Ledger, hold: TableHold
) -> None:
    other = ledger.strategy_books("STRATEGY_A")[0]  # loaded, and not in either batch

    async def run() -> dict[str, Any]:
        writer = Writer(ledger)
        writer.start()
        await hold.take()
        buy = writer.enqueue(OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "p-buy"))
        await hold.until_a_commit_waits()  # the BUY's batch waits on the lock
        # Decided while the BUY commits: the SELL closes the position the BUY opened.
        sell = writer.enqueue(OrderRequest("STRATEGY_B", "MINDA", Position.SELL, "p-sell"))
        with pytest.raises(WriterUnavailable):
            await buy  # the lock timeout: not committed
        hold.release()
        results = {"sell": await sell}
        again = writer.enqueue(OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "p-buy-2"))
        results["again"] = await again
        await writer.stop()
        return results

    results = asyncio.run(run())
    # The SELL was decided again from the store, where the BUY never happened.
    sell = results["sell"].answer
    assert sell.RESPONSE == "REJECTED"
    assert {"user": "Holland Proctor", "reason": "NO_OPEN_POSITION"} in sell.rejected_for
    # No phantom position in memory either: a new BUY opens it.
    assert results["again"].answer.accepted_for == ["Holland Proctor"]
    assert ledger.get_order("p-buy") is None
    # Only the books those batches changed were reloaded: the others stayed in memory.
    assert ledger.strategy_books("STRATEGY_A")[0] is other
    for book in ledger.strategy_books("STRATEGY_B"):
        assert book.version == ledger.repository.get(book.id).version


def committed_ids(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> list[list[str | None]]:
    """The ORDER_IDs of each batch the ledger is asked to commit, in order (the store is real)."""
    batches: list[list[str | None]] = []
    commit = ledger.commit

    def counted(prepared: Any, **kwargs: Any) -> Any:
        batches.append([getattr(r, "order_id", None) for r in prepared.requests])
        return commit(prepared, **kwargs)

    monkeypatch.setattr(ledger, "commit", counted)
    return batches


async def during_a_commit(
    ledger: Ledger, hold: TableHold, first: OrderRequest, then: list[Any]
) -> tuple[Writer, Any, list[Any]]:
    """A writer whose commit of `first` waits on the lock while `then` come one by one, each
    taken (and so decided on its own, on top of the last) before the next comes."""
    writer = Writer(ledger)
    writer.start()
    await hold.take()
    committing = writer.enqueue(first)
    await hold.until_a_commit_waits()
    futures = []
    for request in then:
        futures.append(writer.enqueue(request))
        await asyncio.to_thread(until, writer._queue.empty)
    return writer, committing, futures


def test_orders_that_come_while_a_batch_commits_are_stored_together_next(
    ledger: Ledger,
    make_ledger: Callable[[], Ledger],
    hold: TableHold,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batches = committed_ids(ledger, monkeypatch)

    async def run() -> list[Any]:
        writer, first, joined = await during_a_commit(
            ledger,
            hold,
            OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "j-0"),
            [
                OrderRequest("STRATEGY_B", "ACC", Position.BUY, "j-1"),
                OrderRequest("STRATEGY_B", "MINDA", Position.SELL, "j-2"),  # closes j-0's
                OrderRequest("STRATEGY_B", "ACC", Position.SELL, "j-3"),  # closes j-1's
            ],
        )
        hold.release()
        answers = [await first, *[await future for future in joined]]
        await writer.stop()
        return answers

    answers = [outcome.answer for outcome in asyncio.run(run())]
    assert batches == [["j-0"], ["j-1", "j-2", "j-3"]]
    both = ["Holland Proctor", "Kamryn Li"]
    assert [a.accepted_for for a in answers] == [
        ["Holland Proctor"],
        both,
        ["Holland Proctor"],
        both,
    ]
    sequences = [a.sequence for a in answers]
    assert sequences == sorted(sequences) and len(set(sequences)) == 4
    started = make_ledger()  # the store holds what the writer holds
    for book in ledger.strategy_books("STRATEGY_B"):
        assert started.repository.get(book.id).version == book.version
        assert book.open == {}


def test_a_change_joined_between_orders_is_answered_with_its_own_sequence(
    ledger: Ledger, hold: TableHold, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = committed_ids(ledger, monkeypatch)
    zed = ChangeRequest(Scope.BOOK, {"Zed": {"STRATEGY_B": ["ACC"]}}, "Zed", "STRATEGY_B")

    async def run() -> list[Any]:
        writer, first, joined = await during_a_commit(
            ledger,
            hold,
            OrderRequest("STRATEGY_A", "INFY", Position.BUY, "c-0"),
            [
                OrderRequest("STRATEGY_B", "ACC", Position.BUY, "c-1"),
                zed,  # decided after c-1, before c-2: Zed holds no ACC position
                OrderRequest("STRATEGY_B", "ACC", Position.SELL, "c-2"),
            ],
        )
        hold.release()
        outcomes = [await first, *[await future for future in joined]]
        await writer.stop()
        return outcomes

    _, buy, change, sell = (outcome.answer for outcome in asyncio.run(run()))
    assert batches == [["c-0"], ["c-1", None, "c-2"]]
    assert [c.change for c in change.changes] == ["taken_up"]
    assert buy.sequence < change.sequence < sell.sequence
    assert sell.accepted_for == ["Holland Proctor", "Kamryn Li"]
    assert {"user": "Zed", "reason": "NO_OPEN_POSITION"} in sell.rejected_for
    stored = ledger.events.get(Book.create_id("Zed", "STRATEGY_B"))
    assert [e.originator_version for e in stored][-1] >= 1  # the change is in the store


def test_a_batch_joined_on_a_failed_commit_is_decided_again_whole(
    ledger: Ledger, hold: TableHold, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = committed_ids(ledger, monkeypatch)

    async def run() -> list[Any]:
        writer, buy, joined = await during_a_commit(
            ledger,
            hold,
            OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "f-0"),
            [
                OrderRequest("STRATEGY_B", "ACC", Position.BUY, "f-1"),
                OrderRequest("STRATEGY_B", "MINDA", Position.SELL, "f-2"),  # f-0's, in memory
            ],
        )
        with pytest.raises(WriterUnavailable):
            await buy  # the lock timeout: not committed
        hold.release()
        answers = [await future for future in joined]
        await writer.stop()
        return answers

    accepted, refused = [outcome.answer for outcome in asyncio.run(run())]
    assert batches == [["f-0"], ["f-1", "f-2"]]  # f-0 failed; then both, decided again
    assert accepted.accepted_for == ["Holland Proctor", "Kamryn Li"]
    assert refused.RESPONSE == "REJECTED"  # from the store, where f-0 never happened
    assert {"user": "Holland Proctor", "reason": "NO_OPEN_POSITION"} in refused.rejected_for
    assert ledger.get_order("f-0") is None


def test_a_stop_while_a_retry_is_held_in_a_joined_batch_still_ends(
    ledger: Ledger, hold: TableHold
) -> None:
    async def run() -> list[Any]:
        order = OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "s-1")
        writer, first, (joined, retry) = await during_a_commit(
            ledger, hold, OrderRequest("STRATEGY_A", "INFY", Position.BUY, "s-0"), [order, order]
        )
        assert len(writer._held) == 1  # the retry waits for its first copy's commit
        stopping = asyncio.ensure_future(writer.stop())
        await asyncio.to_thread(until, writer._queue.empty)  # stop's sentinel taken meanwhile
        hold.release()
        answers = [await first, await joined, await retry]
        await asyncio.wait_for(stopping, 30)  # it used to wait for a next order forever
        return answers

    _, joined, retry = asyncio.run(run())
    assert joined.answer == retry.answer
    assert joined.stored and not retry.stored


def test_after_a_failed_part_nothing_more_is_joined_on_reloaded_books(
    ledger: Ledger, hold: TableHold, monkeypatch: pytest.MonkeyPatch
) -> None:
    strategy_books = ledger.strategy_books
    failing, failed = threading.Event(), threading.Event()

    def flaky(strategy: str) -> list[Book]:
        if strategy == "STRATEGY_D" and not failed.is_set():
            failing.wait(30)  # until the order after it is queued
            failed.set()
            raise OperationalError("a dead pooled connection")
        return strategy_books(strategy)

    monkeypatch.setattr(ledger, "strategy_books", flaky)
    settle = Writer._settle
    settling = threading.Event()

    async def observed_settle(self: Writer, *args: Any) -> bool:
        settling.set()
        return await settle(self, *args)

    monkeypatch.setattr(Writer, "_settle", observed_settle)

    async def run() -> list[Any]:
        writer, first, (buy,) = await during_a_commit(
            ledger,
            hold,
            OrderRequest("STRATEGY_A", "INFY", Position.BUY, "x-0"),
            [OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "x-1")],  # the next batch
        )
        # One part: it reads STRATEGY_B's books, then fails, and they are forgotten.
        part = [
            writer.enqueue(OrderRequest("STRATEGY_B", "ACC", Position.BUY, "x-2")),
            writer.enqueue(OrderRequest("STRATEGY_D", "NTPC", Position.BUY, "x-3")),
        ]
        await asyncio.to_thread(until, writer._queue.empty)  # the part is being decided
        sell = writer.enqueue(OrderRequest("STRATEGY_B", "MINDA", Position.SELL, "x-4"))
        failing.set()
        # Joined, x-4 would be decided on STRATEGY_B's books as stored, without x-1's BUY.
        await asyncio.to_thread(until, lambda: writer._queue.empty() or settling.is_set())
        hold.release()
        answers = [await first, await buy, await sell]
        for future in part:
            with pytest.raises(WriterUnavailable):
                await future
        await writer.stop()
        return answers

    _, buy, sell = (outcome.answer for outcome in asyncio.run(run()))
    assert buy.accepted_for == ["Holland Proctor"]
    assert sell.accepted_for == ["Holland Proctor"]  # x-4 closes what x-1 opened
    assert ledger.book(Book.create_id("Holland Proctor", "STRATEGY_B")).open == {}


def test_a_retry_while_its_order_commits_waits_for_that_commit(
    ledger: Ledger, hold: TableHold
) -> None:
    book = ledger.strategy_books("STRATEGY_B")[0]

    async def run() -> tuple[Any, Any]:
        writer = Writer(ledger)
        writer.start()
        await hold.take()
        order = OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "r-1")
        first = writer.enqueue(order)
        await hold.until_a_commit_waits()
        retry = writer.enqueue(order)  # the client gave up waiting and sent it again
        await asyncio.to_thread(until, writer._queue.empty)  # the writer has taken it
        hold.release()
        answers = await first, await retry
        await writer.stop()
        return answers

    first, retry = asyncio.run(run())
    assert first.answer == retry.answer
    assert first.answer.accepted_for == ["Holland Proctor"]
    assert first.stored
    assert not retry.stored
    # Nothing conflicted: the books in memory were kept, not reloaded from the store.
    assert ledger.strategy_books("STRATEGY_B")[0] is book
    assert book.version == ledger.repository.get(book.id).version


def test_a_vacuum_of_the_events_table_does_not_stop_writes(
    database: Database, ledger: Ledger
) -> None:
    # VACUUM's lock, held: writers that locked the table IN EXCLUSIVE MODE waited behind it
    # (until PostgreSQL cancelled an autovacuum, 1 s; an anti-wraparound one, never).
    events = sql.Identifier(database.schema, ledger.store.events_table_name)
    with psycopg.connect(database.url) as conn, conn.transaction():
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE").format(events))
        (outcome,) = ledger.place_orders(
            [OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "during-vacuum")]
        )
    assert outcome.answer.order_id == "during-vacuum"
    assert ledger.get_order("during-vacuum") is not None


def test_a_stale_read_stores_nothing_and_says_how_many_books(ledger: Ledger) -> None:
    books = ledger.strategy_books("STRATEGY_B")
    read = {b.id: b.version for b in books}
    ledger.place_orders([OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "moved-on")])
    before = ledger.last_sequence()
    prepared = ledger.prepare([OrderRequest("STRATEGY_B", "INFY", Position.BUY, "stale")])
    stale = {**prepared.batch.processing_event.saved_kwargs["expected_versions"], **read}
    with pytest.raises(StaleRead, match=r"^1 book\(s\) changed since read$"):
        ledger.store.insert_events(prepared.batch.stored_events, expected_versions=stale)
    assert ledger.last_sequence() == before  # the append is one transaction: nothing stored
    # The same events with what they really read are stored, in one sequence run.
    ids = ledger.store.insert_events(
        prepared.batch.stored_events,
        expected_versions=prepared.batch.processing_event.saved_kwargs["expected_versions"],
    )
    assert list(ids or ()) == list(range(before + 1, before + 1 + len(ids or ())))


def test_the_writer_stores_snapshots_after_its_answers(ledger: Ledger) -> None:
    book = ledger.strategy_books("STRATEGY_B")[0]
    interval = Ledger.snapshotting_intervals[Book]
    at = next(v for v in range(book.version + 1, 10**6) if snapshots.due(book.id, v, interval))

    async def run() -> None:
        writer = Writer(ledger)
        writer.start()
        n = 0
        while book.version < at:
            side = Position.SELL if "MINDA" in book.open else Position.BUY
            n += 1
            outcome = await writer.enqueue(OrderRequest("STRATEGY_B", "MINDA", side, f"s-{n}"))
            assert outcome.stored
        await writer.stop()  # after the commit's snapshots

    asyncio.run(run())
    assert ledger.snapshots is not None
    stored = list(ledger.snapshots.get(book.id, desc=True, limit=1))
    assert [s.originator_version for s in stored] == [at]


def test_answers_do_not_wait_for_snapshots_and_the_next_commit_does(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = ledger.strategy_books("STRATEGY_B")[0]
    interval = Ledger.snapshotting_intervals[Book]
    at = next(v for v in range(book.version + 2, 10**6) if snapshots.due(book.id, v, interval))
    happened: list[str] = []
    release = threading.Event()
    commit, store_snapshots = Ledger.commit, Ledger.store_snapshots

    def committing(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        happened.append("commit")
        return commit(self, *args, **kwargs)

    def storing(self: Ledger, prepared: Any) -> None:
        if (book.id, at) not in {
            (s.originator_id, s.originator_version) for s in prepared.snapshots
        }:
            store_snapshots(self, prepared)  # another book's or the roster's: not this test's
            return
        happened.append("snapshots")
        assert release.wait(timeout=30)
        store_snapshots(self, prepared)
        happened.append("snapshots stored")

    monkeypatch.setattr(Ledger, "commit", committing)
    monkeypatch.setattr(Ledger, "store_snapshots", storing)

    def place(n: int) -> asyncio.Future[Any]:
        side = Position.SELL if "MINDA" in book.open else Position.BUY
        return writer.enqueue(OrderRequest("STRATEGY_B", "MINDA", side, f"s-{n}"))

    async def run() -> None:
        writer.start()
        n = 0
        while book.version < at:
            n += 1
            assert (await place(n)).stored
        # Answered while its snapshot is (or is about to be) held up.
        await asyncio.to_thread(until, lambda: happened[-1] == "snapshots")
        follower = place(n + 1)  # queued behind the snapshot
        release.set()
        assert (await follower).stored
        await writer.stop()

    writer = Writer(ledger)
    try:
        asyncio.run(asyncio.wait_for(run(), timeout=30))
    finally:
        release.set()
    assert happened[-3:] == ["snapshots", "snapshots stored", "commit"]
    assert ledger.snapshots is not None
    stored = list(ledger.snapshots.get(book.id, desc=True, limit=1))
    assert [s.originator_version for s in stored] == [at]


def test_orders_whose_answers_cannot_be_given_fail_instead_of_hanging(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Writer, *args: Any) -> None:
        raise RuntimeError("broken")

    monkeypatch.setattr(Writer, "_answer", broken)

    async def run() -> None:
        writer = Writer(ledger)
        writer.start()
        future = writer.enqueue(OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "a-1"))
        with pytest.raises(RuntimeError, match="broken"):
            await asyncio.wait_for(future, timeout=30)
        await writer.stop()

    asyncio.run(run())


def test_an_idle_writer_loads_the_books_of_its_strategies(
    ledger: Ledger, make_ledger: Callable[[], Ledger]
) -> None:
    ledger.place_orders([OrderRequest("STRATEGY_A", "ACC", Position.BUY)])
    stored = {book.id: book for book in ledger.books()}
    fresh = make_ledger()

    async def run() -> tuple[set[Any], Any]:
        writer = Writer(fresh, warm_up=lambda strategy: strategy != "STRATEGY_B")
        writer.start()
        await writer.warmed()
        warm = set(fresh._books)
        # A strategy left out still loads with its first order.
        placed = await writer.submit(OrderRequest("STRATEGY_B", "MINDA", Position.BUY))
        await writer.stop()
        return warm, placed

    warm, placed = asyncio.run(run())
    assert warm == {book_id for book_id, book in stored.items() if book.strategy != "STRATEGY_B"}
    for book_id in warm:
        assert vars(fresh.book(book_id)) == vars(stored[book_id])
    assert placed.answer.accepted_for == ["Holland Proctor"]


def test_a_writer_without_warm_up_loads_nothing_before_an_order(
    ledger: Ledger, make_ledger: Callable[[], Ledger]
) -> None:
    fresh = make_ledger()

    async def run() -> int:
        writer = Writer(fresh)
        writer.start()
        await writer.warmed()
        await writer.submit(OrderRequest("STRATEGY_B", "MINDA", Position.BUY))
        await writer.stop()
        return fresh.held

    assert asyncio.run(run()) == len(fresh.strategy_books("STRATEGY_B"))


def test_a_book_written_after_a_stale_read_is_refused_by_its_key(
    ledger: Ledger, make_ledger: Callable[[], Ledger]
) -> None:
    prepared = ledger.prepare([OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "mine")])
    expected = prepared.batch.processing_event.saved_kwargs["expected_versions"]
    written = {e.originator_id for e in prepared.batch.stored_events}
    # Every book this batch read it also writes: the stale check probes none of them.
    assert unwritten(prepared.batch.stored_events, expected).keys() == expected.keys() - written
    make_ledger().place_orders([OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "theirs")])
    before = ledger.last_sequence()
    with pytest.raises(IntegrityError):
        ledger.store.insert_events(prepared.batch.stored_events, expected_versions=expected)
    assert ledger.last_sequence() == before
    assert ledger.get_order("mine") is None


def test_the_stale_check_probes_what_the_batch_does_not_write_next() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    stored = [StoredEvent(a, 4, "t", b""), StoredEvent(a, 5, "t", b""), StoredEvent(b, 7, "t", b"")]
    # a: written next (4 after 3); b: written, but not next (7 after 5); c: only read.
    assert unwritten(stored, {a: 3, b: 5, c: 7}) == {b: 5, c: 7}


def test_an_order_is_not_held_back_by_a_big_load(
    ledger: Ledger, make_ledger: Callable[[], Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    # STRATEGY_B's two books count as a big load here; STRATEGY_A's one book does not.
    monkeypatch.setattr(writer_module, "LOAD_INLINE", 1)
    fresh = make_ledger()

    async def run() -> tuple[Any, Any, bool]:
        writer = Writer(fresh, warm_up=lambda strategy: True)
        writer.start()
        big = writer.enqueue(OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "big-1"))
        other = writer.enqueue(OrderRequest("STRATEGY_A", "INFY", Position.BUY))
        loading = r"^the 2 books of STRATEGY_B are being loaded; this request was not decided"
        with pytest.raises(WriterUnavailable, match=loading):
            await big
        stored_meanwhile = fresh.get_order("big-1") is not None
        decided = await other  # in the same batch, decided at once
        await writer.warmed()
        again = await writer.submit(OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "big-1"))
        await writer.stop()
        return decided, again, stored_meanwhile

    decided, again, stored_meanwhile = asyncio.run(run())
    assert not stored_meanwhile  # the 503 stored nothing
    assert decided.answer.RESPONSE == "ACCEPTED"
    assert again.answer.accepted_for == ["Holland Proctor"]
    assert again.stored


def test_warm_up_loads_each_book_once_and_what_waits_first(
    make_ledger: Callable[[], Ledger],
) -> None:
    ledger = make_ledger()
    ledger.import_profiles(
        {**{f"big {n}": {"BIG": ["ACC"]} for n in range(7)}, "small": {"SMALL": ["ACC"]}}
    )
    stored = {book.id: vars(book) for book in ledger.books()}
    fresh = make_ledger()
    assert fresh.warm_up(4) == 4  # the biggest strategy first
    fresh.load_next("BIG")  # the list is built again, BIG first
    # BIG's last three and SMALL's book, each once: a book loaded twice failed the step.
    assert fresh.warm_up(4) == 4
    assert fresh.warm_up(4) == 0
    assert {i: vars(book) for i, book in fresh._books.items()} == stored
    waiting = make_ledger()
    waiting.load_next("SMALL")
    waiting.forget()  # as after a failed commit: the list is built again
    assert waiting.warm_up(1) == 1
    assert set(waiting._books) == {Book.create_id("small", "SMALL")}  # what waits goes first


def test_an_order_given_up_on_before_deferral_leaves_the_writer_running(
    ledger: Ledger, make_ledger: Callable[[], Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "LOAD_INLINE", 1)
    fresh = make_ledger()

    async def run() -> Any:
        writer = Writer(fresh, warm_up=lambda strategy: True)
        writer.start()
        writer.enqueue(OrderRequest("STRATEGY_B", "MINDA", Position.BUY)).cancel()
        placed = await writer.submit(OrderRequest("STRATEGY_A", "INFY", Position.BUY))
        await writer.stop()
        return placed

    assert asyncio.run(run()).answer.RESPONSE == "ACCEPTED"


def test_warm_up_starts_again_after_books_are_forgotten_or_changed(
    ledger: Ledger, make_ledger: Callable[[], Ledger]
) -> None:
    fresh = make_ledger()
    while fresh.warm_up(100):
        pass
    assert fresh.warm
    some = ledger.strategy_books("STRATEGY_B")[0].id
    fresh.forget([some])
    assert not fresh.warm
    assert fresh.warm_up(100) == 1  # the forgotten book, and no other
    assert fresh.warm_up(100) == 0
    assert fresh.warm
    fresh.books_changed([])
    assert not fresh.warm  # another process may have added books
    assert fresh.warm_up(100) == 0
    assert fresh.warm


def test_what_orders_wait_for_is_released_once_loaded(make_ledger: Callable[[], Ledger]) -> None:
    ledger = make_ledger()
    ledger.import_profiles({f"big {n}": {"BIG": ["ACC"]} for n in range(5)} | {"s": {"S": ["ACC"]}})
    fresh = make_ledger()
    fresh.load_next("BIG")
    assert fresh.warm_up(2) == 2
    assert fresh.waited_for  # three of BIG's books still to load
    assert fresh.warm_up(2) == 2
    assert fresh.waited_for
    assert fresh.warm_up(2) == 2  # BIG's last, then S's
    assert not fresh.waited_for
    assert not fresh.warm


def test_after_a_failed_warm_up_step_the_books_are_listed_again(
    ledger: Ledger, make_ledger: Callable[[], Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    every = {book.id for book in ledger.books()}
    fresh = make_ledger()
    fresh.load_next("STRATEGY_B")

    def down(book_ids: Any) -> Any:
        raise psycopg.OperationalError("the database went away")

    with monkeypatch.context() as patch:
        patch.setattr(fresh, "_loaded", down)
        with pytest.raises(psycopg.OperationalError):
            fresh.warm_up(1)
    assert not fresh.warm
    assert fresh.waited_for  # still first
    assert fresh.warm_up(100) == len(every)  # the failed step's book too
    assert set(fresh._books) == every


def test_a_writer_resumes_a_failed_warm_up_by_itself(
    ledger: Ledger, make_ledger: Callable[[], Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    every = {book.id for book in ledger.books()}
    fresh = make_ledger()
    monkeypatch.setattr(writer_module, "WARM_RETRY", 0.05)
    loaded = fresh._loaded
    failures = [psycopg.OperationalError("a dead pooled connection")]

    def once(book_ids: Any) -> Any:
        if failures:
            raise failures.pop()
        return loaded(book_ids)

    monkeypatch.setattr(fresh, "_loaded", once)

    async def run() -> set[Any]:
        writer = Writer(fresh, warm_up=lambda strategy: True)
        writer.start()
        await writer.warmed()  # no order comes: the pause ends by itself
        await writer.stop()
        return set(fresh._books)

    assert asyncio.run(run()) == every
    assert not failures


def test_an_idle_writer_loads_again_the_books_a_failed_decision_forgot(
    ledger: Ledger, make_ledger: Callable[[], Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = make_ledger()
    every = {book.id for book in ledger.books()}
    read = {book.id for book in ledger.strategy_books("STRATEGY_B")}
    loaded: list[Any] = []  # the books each load took, in order
    load = fresh._loaded

    def recorded(book_ids: Any) -> Any:
        loaded.append(set(book_ids))
        return load(book_ids)

    monkeypatch.setattr(fresh, "_loaded", recorded)

    def fails(*args: Any) -> Any:
        raise RuntimeError("a bug while deciding")

    async def run() -> int:
        writer = Writer(fresh, warm_up=lambda strategy: True)
        writer.start()
        await writer.warmed()
        loads = len(loaded)
        with monkeypatch.context() as patch:
            patch.setattr("ledger.batch.due_snapshots", fails)
            with pytest.raises(RuntimeError):
                await writer.submit(OrderRequest("STRATEGY_B", "MINDA", Position.BUY))
        await writer.warmed()  # the forgotten books loaded again, no order needed
        await writer.stop()
        return loads

    before = asyncio.run(run())
    assert set().union(*loaded[:before]) == every
    assert set().union(*loaded[before:]) == read  # those the failed batch read, and no other
    assert set(fresh._books) == every


def test_a_failing_warm_up_does_not_defer_orders_forever(
    ledger: Ledger, make_ledger: Callable[[], Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A book that cannot be loaded fails every warm-up step that takes it: orders are then no
    # longer told their books are being loaded; they load them and give the real error.
    monkeypatch.setattr(writer_module, "LOAD_INLINE", 1)
    monkeypatch.setattr(writer_module, "WARM_RETRY", 60.0)
    fresh = make_ledger()
    bad = Book.create_id("Kamryn Li", "STRATEGY_B")
    load = fresh._loaded

    def breaks(book_ids: Any) -> Any:
        if bad in book_ids:
            raise RuntimeError("this book cannot be decoded")
        return load(book_ids)

    monkeypatch.setattr(fresh, "_loaded", breaks)

    async def run() -> None:
        writer = Writer(fresh, warm_up=lambda strategy: True)
        writer.start()
        await asyncio.to_thread(until, lambda: writer._warm_paused > 0)
        with pytest.raises(RuntimeError, match="cannot be decoded"):
            await writer.submit(OrderRequest("STRATEGY_B", "MINDA", Position.BUY))
        placed = await writer.submit(OrderRequest("STRATEGY_A", "INFY", Position.BUY))
        assert placed.answer.accepted_for == ["Holland Proctor"]
        await writer.stop()

    asyncio.run(run())


def test_a_stop_during_a_document_finishes_it_first(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two books a slice: the document's slices come one by one, each after a commit; a stop
    # asked for meanwhile must not leave it half applied.
    monkeypatch.setattr(writer_module, "SLICE_BOOKS", 2)
    wanted = {f"d{n}": {"STRATEGY_A": ["ACC"]} for n in range(7)}
    wanted["Kamryn Li"] = {"STRATEGY_B": ["ACC"]}
    document = ChangeRequest(Scope.ALL, wanted)  # type: ignore[arg-type]
    leaving = ChangeRequest(Scope.USER, {}, "Kamryn Li")
    second = ChangeRequest(Scope.ALL, {}, dry_run=True)

    async def run() -> tuple[Any, Any, BaseException]:
        writer = Writer(ledger)
        writer.start()
        applying = writer.enqueue(document)
        after = writer.enqueue(leaving)  # a user's change waits for the document to end
        refused = writer.enqueue(second)  # another document is refused at once
        await writer.stop()
        failure = (await asyncio.gather(refused, return_exceptions=True))[0]
        return await applying, await after, failure

    applied, after, refused = asyncio.run(run())
    assert isinstance(refused, WriterUnavailable)
    assert "another profile document or user's change is being applied" in str(refused)
    sequences = [c.sequence for c in applied.answer.changes]
    assert len(set(sequences)) == 6  # 8 books listed, 3 dropped: 11 books, 2 a slice
    assert applied.answer.sequence == max(sequences)
    # Not interleaved: decided once the document's last slice was committed.
    assert [(c.user, c.strategy, c.change) for c in after.answer.changes] == [
        ("Kamryn Li", "STRATEGY_B", "dropped")
    ]
    assert after.answer.sequence > applied.answer.sequence
    del wanted["Kamryn Li"]
    assert ledger.profiles() == wanted


def test_a_retry_the_answers_in_memory_lost_keeps_the_books_loaded(
    ledger: Ledger, make_ledger: Callable[[], Ledger]
) -> None:
    first = ledger.place_orders([OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "old-1")])[0]
    fresh = make_ledger()  # a restart: no answer in memory
    forgotten: list[Any] = []
    forget = fresh.forget

    def recorded(book_ids: Any = None) -> None:
        forgotten.append(book_ids)
        forget(book_ids)

    fresh.forget = recorded  # type: ignore[method-assign]

    async def run() -> tuple[Any, Any, int, int]:
        writer = Writer(fresh, warm_up=lambda strategy: True)
        writer.start()
        await writer.warmed()
        loaded = fresh.held
        # Decided again, its commit meets the stored ORDER_ID: it is answered from the store.
        retry = await writer.submit(OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "old-1"))
        held = fresh.held  # before any warm-up step could load forgotten books again
        after = await writer.submit(OrderRequest("STRATEGY_B", "MINDA", Position.SELL, "new-1"))
        await writer.stop()
        return retry, after, loaded, held

    retry, after, loaded, held = asyncio.run(run())
    assert retry.answer == first.answer
    assert after.answer.accepted_for == ["Holland Proctor"]  # the BUY's position, once
    # Only the books the failed batch changed were forgotten, not every one.
    assert forgotten and None not in forgotten
    assert held >= loaded - len(fresh.strategy_books("STRATEGY_B"))
