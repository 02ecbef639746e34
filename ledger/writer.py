"""The single writer: orders queue up, are decided in arrival order and committed in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, PersistenceError

from ledger import faults
from ledger.answers import OrderOutcome, OrderRequest
from ledger.application import Ledger
from ledger.batch import Outcome, Prepared, Request, merged
from ledger.logs import logfmt, order_line
from ledger.metrics import Metrics
from ledger.user_answers import (
    SLICE_BOOKS,
    BookChange,
    ChangeAnswer,
    ChangeOutcome,
    ChangeRequest,
    Scope,
    joined,
)
from ledger.wire import Answered, WriterUnavailable, recent_failure

log = logging.getLogger(__name__)
orders_log = logging.getLogger("ledger.orders")  # one line per decision; see logs.configure
changes_log = logging.getLogger("ledger.changes")  # one line per book changed; file only too

WARM_STEP = 100  # books per warm-up step (250 measured no faster in all, 2.5x the pause)
WARM_RETRY = 1.0  # seconds before a failed warm-up step is tried again, doubled each time
WARM_RETRY_MOST = 60.0
# Books an order's batch may load itself (~0.3-0.9 s). An order of a strategy with more books
# not in memory is answered 503 at once, nothing stored, while warm-up steps between batches
# load them first: one strategy's load (10,000 books: 1-4 s) never holds every order back.
LOAD_INLINE = 2000


@dataclass
class _Pending:
    request: Request  # for a change decided in slices: what is left of it
    future: asyncio.Future[Outcome]
    parts: list[ChangeAnswer] = field(default_factory=list)  # its slices answered so far


def _document_scope(pending: _Pending) -> Scope | None:
    """The scope of a change of many books (a document, or all of a user's; one at a time
    per writer), else None."""
    request = pending.request
    if isinstance(request, ChangeRequest) and request.scope is not Scope.BOOK:
        return request.scope
    return None


class Writer:
    """Owns the ledger's write side; every order and every change of the books goes through it."""

    def __init__(
        self,
        ledger: Ledger,
        max_batch: int = 1000,
        max_queue: int = 10_000,
        metrics: Metrics | None = None,
        on_failure: Callable[[], None] | None = None,
        warm_up: Callable[[str], bool] | None = None,
    ) -> None:
        self.ledger = ledger
        self.on_failure = on_failure  # called in a thread after a failed batch
        self.metrics = metrics or Metrics()
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # Its own threads: reads on the default executor must never keep the writer waiting.
        # One decides batches, one commits them, so deciding overlaps the database's work.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-commit")
        self._decider = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-decide")
        self._conflicted: list[_Pending] | None = None
        # The profile document (or user's change) being applied, in slices; one at a time:
        # the slices of two, interleaved, could leave the books as neither (or as none).
        self._document: _Pending | None = None
        self._after_document: list[_Pending] = []  # users' changes waiting for it to end
        self._storing: Prepared | None = None  # the batch being committed
        self._held: list[_Pending] = []  # retries of ORDER_IDs committing (see _hold_retries)
        self._stop_taken = False  # stop()'s sentinel has been taken from the queue
        self._failure: tuple[str, float] | None = None  # the last commit failure, and when
        self._warm_up = warm_up  # which strategies' books to load while idle; None: none
        self._warm_time = 0.0  # seconds spent warming up
        self._warm_paused = 0.0  # monotonic time before which no warm-up step runs (a failure)
        self._warm_retry = WARM_RETRY  # the next pause after a failure
        self._warm = asyncio.Event()  # set while no warm-up is under way
        if not self._warming:
            self._warm.set()

    @property
    def failing(self) -> str | None:
        """Why the last commit failed, if it did within FAILING_FOR seconds and none succeeded."""
        return recent_failure(self._failure)

    @property
    def _warming(self) -> bool:
        """Whether books are to be loaded while idle: after a start, and after the ledger forgot
        books or they changed (the ledger says when it is warm)."""
        return self._warm_up is not None and not self.ledger.warm

    def _warm_wait(self) -> float | None:
        """Seconds until the next warm-up step may run (0: now), None when none is to run."""
        if not self._warming:
            return None
        return max(0.0, self._warm_paused - time.monotonic())

    @property
    def queued(self) -> int:
        """Orders waiting for the next batch."""
        return self._queue.qsize() + len(self._held) + len(self._after_document)

    def start(self) -> None:
        """Start the writer task on the running loop."""
        self._task = asyncio.create_task(self._run(), name="ledger-writer")
        self._task.add_done_callback(self._ended)

    async def wait_ended(self) -> None:
        """Until the writer task has ended (stopped, or died)."""
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(self._task)

    def _ended(self, task: asyncio.Task[None]) -> None:
        # Should the task ever die, nobody may wait forever for an answer.
        self._stopping = True
        if not task.cancelled() and task.exception() is not None:
            log.error("the writer stopped", exc_info=task.exception())
        failure = WriterUnavailable("the writer has stopped")
        waiting: list[_Pending | None] = [*self._held, *self._after_document]
        self._after_document = []
        self._held = []
        while not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for pending in waiting:
            if pending is not None and not pending.future.done():
                pending.future.set_exception(failure)

    async def stop(self) -> None:
        """Refuse new orders, answer the ones queued, then end."""
        self._stopping = True
        if self._task is not None:
            if not self._task.done():
                await self._queue.put(None)
            with contextlib.suppress(Exception):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True)
        self._decider.shutdown(wait=True)

    async def submit(self, request: Request) -> Outcome:
        """Queue an order (or a change) and wait until its batch has committed."""
        return await self.enqueue(request)

    async def place(self, request: Request) -> Answered:
        """The answer once committed, as JSON bytes (the Desk interface)."""
        return Answered.of(await self.enqueue(request))

    @property
    def partitions(self) -> int:
        """One writer holds every strategy."""
        return 1

    def enqueue(self, request: Request) -> asyncio.Future[Outcome]:
        """Queue an order or a change; the future resolves once its batch has committed."""
        if self._stopping or self._task is None:
            msg = "the ledger is shutting down"
            raise WriterUnavailable(msg)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(request, future))
        except asyncio.QueueFull:
            msg = "too many orders waiting; retry with the same ORDER_ID"
            raise WriterUnavailable(msg) from None
        return future

    def _take(self, first: _Pending | None, room: int | None = None) -> tuple[list[_Pending], bool]:
        """The next batch (up to `room`, max_batch), and whether a stop was asked for."""
        batch = [] if first is None else [first]
        stop = first is None
        room = self.max_batch if room is None else room
        while len(batch) < room and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                stop = True
                continue
            batch.append(item)
        self._stop_taken = self._stop_taken or stop  # taken once: every later turn must know
        return self._one_document(batch), stop

    def _one_document(self, batch: list[_Pending]) -> list[_Pending]:
        """The batch without documents (or users' changes) that come while another is being
        applied: a user's change waits for its end, a document is answered 503 at once,
        nothing of it decided here (a queue of them would hold every one's books)."""
        kept = []
        for pending in batch:
            if (scope := _document_scope(pending)) is not None:
                if self._document is None:
                    self._document = pending
                elif scope is Scope.USER:
                    self._after_document.append(pending)
                    continue
                else:
                    msg = (
                        "another profile document or user's change is being applied; nothing"
                        " of this document was (with several writers, another's part may"
                        " have been): send it again once that one is answered"
                    )
                    if not pending.future.done():
                        pending.future.set_exception(WriterUnavailable(msg))
                    continue
            kept.append(pending)
        return kept

    async def _run(self) -> None:
        # Pipelined: batch N+1 is decided while batch N commits. Commits stay in order; a
        # batch decided on top of one that failed to commit is decided again from the store.
        committing: asyncio.Task[bool] | None = None
        in_flight: frozenset[str] = frozenset()  # the ORDER_IDs the committing batch stores
        getter: asyncio.Future[_Pending | None] | None = None
        await self._read_roster()
        try:
            while True:
                if committing is None and self._finished():
                    return  # after the last commit: a document's slices come one by one
                if getter is None:
                    getter = asyncio.ensure_future(self._queue.get())
                idle = committing is None and not getter.done() and self._queue.empty()
                warm_wait = self._warm_wait() if idle and not self._held else None
                if warm_wait == 0:
                    await self._warm_step()
                    continue
                if not (self._held and committing is None):
                    waiting: set[asyncio.Future[Any]] = {getter}
                    if committing is not None:
                        waiting.add(committing)
                    # A paused warm-up resumes when its pause ends, even if no order comes.
                    done, _ = await asyncio.wait(
                        waiting, timeout=warm_wait, return_when=asyncio.FIRST_COMPLETED
                    )
                    if committing is not None and committing in done:
                        await self._settle(committing, None)
                        committing = None
                    if getter not in done and not self._held:  # the commit ended
                        continue
                batch, self._held, stop = self._held, [], False
                if getter.done():
                    taken, stop = self._take(getter.result())
                    batch += taken
                    getter = None
                if committing is not None and not stop:
                    batch = self._hold_retries(batch, in_flight)
                batch = await self._defer_loads(batch)
                if batch:
                    prepared = await self._prepare(batch)
                    batch, prepared, getter = await self._join_arrivals(
                        committing, batch, prepared, getter, in_flight
                    )
                    if committing is not None:
                        ok = await self._settle(committing, prepared)
                        committing = None
                        if not ok and prepared is not None:
                            prepared = await self._prepare(batch)  # decided on lost state
                    if prepared is not None:
                        self._storing = prepared
                        committing = asyncio.create_task(self._commit(batch, prepared))
                        in_flight = frozenset(prepared.orders)
        finally:
            if getter is not None:
                getter.cancel()
            if committing is not None:
                await self._settle(committing, None)

    def _finished(self) -> bool:
        """Whether a stop was asked for and nothing is left to decide: no request queued or
        held, no document with slices to come (its next one is queued when one commits)."""
        idle = self._queue.empty() and not self._held and self._document is None
        idle = idle and not self._after_document
        return self._stop_taken and idle

    async def _join_arrivals(
        self,
        committing: asyncio.Task[bool] | None,
        batch: list[_Pending],
        prepared: Prepared | None,
        getter: asyncio.Future[_Pending | None] | None,
        in_flight: frozenset[str],
    ) -> tuple[list[_Pending], Prepared | None, asyncio.Future[_Pending | None] | None]:
        """Until the commit ends, decide the orders that come on top of the next batch and
        join them to it: (that batch, decided, the queue's getter).

        Decided alone, the first order to come during a commit made the next batch, and all
        that came after it waited for two commits (measured at 21 x 4: batches of 1, 17 and
        46 in turn, the database idle a third of the time between commits).
        """
        if committing is None or prepared is None:
            return batch, prepared, getter
        while not self._stop_taken and not committing.done() and len(batch) < self.max_batch:
            if getter is None:
                getter = asyncio.ensure_future(self._queue.get())
            if not getter.done():
                waiting: set[asyncio.Future[Any]] = {getter, committing}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    break  # the commit ended
            more, _ = self._take(getter.result(), self.max_batch - len(batch))
            getter = None
            # A retry of an ORDER_ID this batch or the commit stores waits for that commit.
            more = self._hold_retries(more, in_flight | frozenset(prepared.orders))
            more = await self._defer_loads(more)
            if not more:
                continue
            part = await self._prepare(more)
            if part is None:
                # Answered with its failure, and the books it read forgotten: reloaded now,
                # they would lack what this batch and the commit hold, and joined, the next
                # part's stale read would go unseen (this batch's expected versions win).
                break
            batch, prepared = batch + more, merged(prepared, part)
        return batch, prepared, getter

    async def _read_roster(self) -> None:
        """Hold the roster from the start: _defer_loads counts books only where it is held."""
        if self._warm_up is not None:
            with contextlib.suppress(Exception):  # the database is down: batches read it later
                await asyncio.get_running_loop().run_in_executor(
                    self._decider, self.ledger.roster_version
                )

    async def _warm_step(self) -> None:
        """Load a few books while no order waits, or before a batch while orders wait for them.

        After a restart a strategy's books loaded with its first order: 10,000 books far from
        their snapshots took ~4 s, beyond the time an answer may wait, and every other order
        waited too. Loaded in steps short enough (WARM_STEP books, <= ~40 ms) that an order
        arriving meanwhile waits little.
        """
        self._warm.clear()
        started = time.perf_counter()
        try:
            warm = partial(self.ledger.warm_up, WARM_STEP, self._warm_up)
            await asyncio.get_running_loop().run_in_executor(self._decider, warm)
        except Exception as error:
            # Paused, not ended: a dead pooled connection fails one step, and a database that
            # is down is not asked again in a loop.
            if not self._warm_paused:
                log.warning("warming up books paused (%s); trying again in %g s", error, WARM_RETRY)
            self._warm_paused = time.monotonic() + self._warm_retry
            self._warm_retry = min(2 * self._warm_retry, WARM_RETRY_MOST)
        else:
            self._warm_paused, self._warm_retry = 0.0, WARM_RETRY
        self._warm_time += time.perf_counter() - started
        if not self._warming:  # every book loaded
            self._warm.set()
            log.info("books in memory: %d, warmed in %.1f s", self.ledger.held, self._warm_time)

    async def _defer_loads(self, batch: list[_Pending]) -> list[_Pending]:
        """The batch without orders of strategies too big to load inline (see LOAD_INLINE);
        those are answered 503 and their books loaded next by the warm-up, a step of which
        runs now (before the batch) while orders wait for them."""
        kept = self._deferred(batch)
        if self._warm_wait() == 0 and self.ledger.waited_for:
            await self._warm_step()
        return kept

    def _deferred(self, batch: list[_Pending]) -> list[_Pending]:
        if not self._warming or self._warm_up is None:
            return batch  # no warm-up to load them: each batch loads what it needs
        if self._warm_paused:
            # Its last step failed (the same books may fail each time): orders load their
            # books themselves, and one that cannot be loaded answers with the real error.
            return batch
        warm_up = self._warm_up
        strategies = {
            p.request.strategy
            for p in batch
            if isinstance(p.request, OrderRequest) and warm_up(p.request.strategy)
        }
        try:
            waiting = {s: n for s in strategies if (n := self.ledger.unloaded(s)) > LOAD_INLINE}
            for strategy in waiting:
                self.ledger.load_next(strategy)
        except Exception:  # the roster could not be read: the batch fails on its own
            return batch
        if not waiting:
            return batch
        deferred, kept = _split(batch, lambda order: order.strategy in waiting)
        for pending in deferred:
            strategy = pending.request.strategy
            msg = (
                f"the {waiting[strategy]:,} books of {strategy} are being loaded; this request"
                " was not decided: send it again in a second, with the same ORDER_ID"
            )
            if not pending.future.done():  # a client that gave up cancelled it
                pending.future.set_exception(WriterUnavailable(msg))
        return kept

    async def warmed(self) -> None:
        """Until the warm-up has ended with every book loaded (at once when there is none)."""
        while True:
            await self._warm.wait()
            if not self._warming:
                return
            self._warm.clear()  # books were forgotten since: until they are loaded again

    def _hold_retries(self, batch: list[_Pending], in_flight: frozenset[str]) -> list[_Pending]:
        """The batch without retries of ORDER_IDs still committing; those wait for the commit.

        Decided now, a retry would store its ORDER_ID a second time: the conflict would reload
        every book, slow enough for the next retry to arrive while the next order commits.
        After the commit it is answered from what was stored, deciding nothing.
        """
        if not in_flight:
            return batch
        held, now = _split(batch, lambda order: order.order_id in in_flight)
        self._held.extend(held)
        return now

    async def _settle(self, committing: asyncio.Task[bool], on_top: Prepared | None) -> bool:
        """Wait for a commit; after a failed one, the books in memory are not the store's.

        Runs when no batch is being decided, so the ledger is touched by nobody else.
        `on_top` is the batch decided while it committed, in memory too.
        """
        ok = await committing
        storing, self._storing = self._storing, None  # not kept alive until the next commit
        if not ok:
            lost = changed(storing, on_top)
            if self._conflicted is not None and not await self._stored_ids(self._conflicted):
                lost = None  # another process changed books: any of them may be stale
            self.ledger.forget(lost)  # the warm-up loads them again while idle
        if self._conflicted is not None:
            # Another process changed these books: decide this batch again from the store,
            # with place_orders' retries.
            batch, self._conflicted = self._conflicted, None
            started = time.perf_counter()
            try:
                place = partial(
                    self.ledger.place_orders, [p.request for p in batch], slice_books=SLICE_BOOKS
                )
                outcomes = await asyncio.get_running_loop().run_in_executor(self._executor, place)
            except Exception as error:
                self.ledger.forget()  # place_orders forgets too; the next batch must not see it
                self._fail(batch, error)
            else:
                self._answer(batch, outcomes, started)
        return ok

    async def _stored_ids(self, batch: list[_Pending]) -> bool:
        """Whether a conflicted batch's ORDER_IDs explain its conflict: some are in the store
        already (a retry the answers in memory no longer had, after a restart say).

        Their answers are kept in memory, so deciding the batch again answers them from it.
        Forgetting every book instead took a 10,000-follower writer ~8 s to reload, every
        order of those strategies answered 503 meanwhile, at each such retry.
        """
        orders = [p.request for p in batch if isinstance(p.request, OrderRequest)]
        if not any(order.order_id for order in orders):
            return False
        look_up = partial(self.ledger.known_answers, orders, look_up_ids=True)
        try:
            found = await asyncio.get_running_loop().run_in_executor(self._executor, look_up)
        except Exception:  # the database is failing: as after any conflict
            return False
        return bool(found)

    async def _prepare(self, batch: list[_Pending]) -> Prepared | None:
        """Decide a batch in the decision thread; None (the batch answered) if that failed."""
        try:
            requests = self.ledger.with_ids([p.request for p in batch])
            decide = partial(self.ledger.prepare, requests, slice_books=SLICE_BOOKS)
            return await asyncio.get_running_loop().run_in_executor(self._decider, decide)
        except Exception as error:
            self._fail(batch, error)
            return None

    async def _commit(self, batch: list[_Pending], prepared: Prepared) -> bool:
        """Store a decided batch and answer it; False if it was not stored."""
        started = time.perf_counter()
        loop = asyncio.get_running_loop()

        def store() -> None:
            outcomes = self.ledger.commit(prepared, snapshots=False)
            # Answers first: nothing after this may keep a client waiting. The snapshots only
            # shorten loads; they are stored next, before the next commit, in this thread: a
            # hop back to it cost ~2 ms a batch under load (a thread waiting for the GIL).
            loop.call_soon_threadsafe(self._answer_or_fail, batch, outcomes, started)
            if prepared.snapshots:  # most batches have none due
                self.ledger.store_snapshots(prepared)  # never raises: a failure is logged

        try:
            await loop.run_in_executor(self._executor, store)
        except IntegrityError as conflict:
            log.info("batch of %d conflicted (%s); deciding it again", len(batch), conflict)
            self._conflicted = batch  # for _settle: the next batch may be being decided now
            return False
        except Exception as error:
            self._fail(batch, error)
            return False
        return True

    def _answer_or_fail(
        self, batch: list[_Pending], outcomes: list[Outcome], started: float
    ) -> None:
        # A callback of the loop, not of the task: what it raised would only be logged, and
        # the clients left waiting for their answer until they give up.
        try:
            self._answer(batch, outcomes, started)
        except Exception as error:
            self._fail(batch, error)

    def _fail(self, batch: list[_Pending], error: Exception) -> None:
        if isinstance(error, PersistenceError):
            self.metrics.failed(len(batch))
            log.error("batch of %d not committed: %s", len(batch), error)
            failure: Exception = WriterUnavailable(f"database unavailable: {error}")
            self._failure = (str(error), time.monotonic())
            if self.on_failure is not None:
                asyncio.get_running_loop().run_in_executor(None, self.on_failure)
        else:
            log.error("batch of %d failed", len(batch), exc_info=error)
            failure = error
        for pending in batch:
            if pending is self._document:
                self._document_ended()  # its slices stop here: sent again, it goes on
            if not pending.future.done():
                pending.future.set_exception(failure)

    def _answer(self, batch: list[_Pending], outcomes: list[Outcome], started: float) -> None:
        faults.hit("after_commit")
        self._failure = None
        # Answers first: nothing after this (metrics files, logs) may keep a client waiting.
        finished: list[ChangeOutcome] = []
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, ChangeOutcome):
                whole = self._sliced(pending, outcome)
                if whole is None:
                    continue  # more slices to come, in the next batches
                finished.append(whole)
                if not pending.future.done():
                    pending.future.set_result(whole)
            elif not pending.future.done():
                pending.future.set_result(outcome)
        elapsed = time.perf_counter() - started
        try:
            orders = [o for o in outcomes if isinstance(o, OrderOutcome)]
            stored = [o.answer.RESPONSE for o in orders if o.stored]
            self.metrics.committed(stored, len(batch), elapsed)
            log.debug("committed %d requests in %.1f ms", len(batch), 1e3 * elapsed)
            if orders and orders_log.isEnabledFor(logging.INFO):
                # One record per batch, one line per order (see logs.configure).
                orders_log.info("\n".join(order_line(o.answer, o.reused_id) for o in orders))
            if finished:
                # Off the loop: a profile document of 90,000 books took ~1.5 s to format (and
                # took 7 s when each line was a record), every order waiting behind it.
                loop = asyncio.get_running_loop()
                loop.run_in_executor(None, partial(_logged, change_lines, finished))
        except Exception:
            log.exception("batch of %d committed and answered; not counted or logged", len(batch))

    def _document_ended(self) -> None:
        """The first user's change that waited for the document goes in the next batch, and
        holds the gate in its turn (a big one is decided in slices too)."""
        self._document = None
        if self._after_document:
            self._document = self._after_document.pop(0)
            self._held.append(self._document)

    def _sliced(self, pending: _Pending, outcome: ChangeOutcome) -> ChangeOutcome | None:
        """A change's whole outcome once its last slice is committed; None until then, the
        rest queued for the next batch (ahead of what arrives meanwhile)."""
        if outcome.rest is not None:
            pending.parts.append(outcome.answer)
            pending.request = outcome.rest
            # Decided whether or not its client still waits: the document is applied whole.
            self._held.append(pending)
            return None
        if pending is self._document:
            self._document_ended()
        if not pending.parts:
            return outcome
        stored = outcome.stored or any(p.sequence is not None for p in pending.parts)
        answer, pending.parts = joined([*pending.parts, outcome.answer]), []
        return ChangeOutcome(answer, stored=stored)


def _split(
    batch: list[_Pending], test: Callable[[OrderRequest], bool]
) -> tuple[list[_Pending], list[_Pending]]:
    """The batch's orders that pass `test`, and the rest, each in arrival order."""
    chosen: list[_Pending] = []
    rest: list[_Pending] = []
    for pending in batch:
        request = pending.request
        (chosen if isinstance(request, OrderRequest) and test(request) else rest).append(pending)
    return chosen, rest


def changed(*batches: Prepared | None) -> list[UUID] | None:
    """The books that decided batches changed in memory; None (every book) if one changed a
    profile, which may have added books and changed the index of them.

    Forgetting only these after a failed commit keeps every other book loaded: at 10,000
    followers a full reload took 2.5-9 s, every order meanwhile answered 503.
    """
    ids: list[UUID] = []
    for prepared in batches:
        if prepared is None:
            continue
        if any(isinstance(request, ChangeRequest) for request in prepared.requests):
            return None
        ids.extend(event.originator_id for event in prepared.batch.processing_event.events)
    return ids


def _logged(write: Callable[[list[ChangeOutcome]], None], changes: list[ChangeOutcome]) -> None:
    try:
        write(changes)
    except Exception:
        log.exception("changes committed and answered; not logged")


def change_lines(outcomes: list[ChangeOutcome]) -> None:
    """A line for each change request, and one for each book it changed (in the file only).

    A dry run's are not logged.
    """
    for outcome in outcomes:
        answer = outcome.answer
        changed = [c for c in answer.changes if c.change != "unchanged"]
        if answer.dry_run or not changed:
            continue
        kinds = Counter(str(c.change) for c in changed)
        first, last = changed[0].sequence, changed[-1].sequence  # a slice's each
        log.info(
            "%d book(s) changed at %s: %s",
            len(changed),
            last if first == last else f"{first}-{last}",
            ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())),
        )
        if changes_log.isEnabledFor(logging.INFO):  # one record, one line per book
            shown: dict[Any, str] = {}
            changes_log.info("\n".join(_change_line(c, shown) for c in changed))


def _change_line(change: BookChange, shown: dict[Any, str]) -> str:
    # Names are client input: quoted when not plain. A document repeats a few names and
    # lists in 90,000 lines: each is rendered once (1.5 s -> 0.3 s, on a thread that shares
    # the GIL with the writer's loop).
    instruments = _shown(shown, tuple(change.instruments))
    kept = f"; kept open {_shown(shown, tuple(change.kept_open))}" if change.kept_open else ""
    book = f"{_shown(shown, change.user)}/{_shown(shown, change.strategy)}"
    return f"{change.change} {book} at {change.sequence}: {instruments}{kept}"


def _shown(shown: dict[Any, str], value: str | tuple[str, ...]) -> str:
    text = shown.get(value)
    if text is None:
        text = logfmt(value) if isinstance(value, str) else str([logfmt(v) for v in value])
        shown[value] = text
    return text
