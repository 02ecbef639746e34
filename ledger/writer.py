"""The single writer: orders queue up, are decided in arrival order and committed in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from eventsourcing.persistence import PersistenceError

from ledger import faults
from ledger.answers import OrderOutcome, OrderRequest
from ledger.application import Ledger
from ledger.metrics import Metrics

log = logging.getLogger(__name__)
orders_log = logging.getLogger("ledger.orders")  # one line per decision; see logs.configure


class WriterUnavailable(Exception):
    """The order was not committed: the database failed, or the writer is stopping."""


@dataclass
class _Pending:
    request: OrderRequest
    future: asyncio.Future[OrderOutcome]


class Writer:
    """Owns the ledger's write side; every order goes through submit()."""

    def __init__(
        self,
        ledger: Ledger,
        max_batch: int = 1000,
        max_queue: int = 10_000,
        metrics: Metrics | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.on_failure = on_failure  # called in a thread after a failed batch
        self.metrics = metrics or Metrics()
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # Its own thread: reads on the default executor must never keep the writer waiting.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writer")

    @property
    def queued(self) -> int:
        """Orders waiting for the next batch."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the writer task on the running loop."""
        self._task = asyncio.create_task(self._run(), name="ledger-writer")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        # Should the task ever die, nobody may wait forever for an answer.
        self._stopping = True
        if not task.cancelled() and task.exception() is not None:
            log.error("the writer stopped", exc_info=task.exception())
        failure = WriterUnavailable("the writer has stopped")
        while not self._queue.empty():
            pending = self._queue.get_nowait()
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

    async def submit(self, request: OrderRequest) -> OrderOutcome:
        """Queue an order and wait until its batch has committed."""
        if self._stopping or self._task is None:
            msg = "the ledger is shutting down"
            raise WriterUnavailable(msg)
        future: asyncio.Future[OrderOutcome] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(request, future))
        except asyncio.QueueFull:
            msg = "too many orders waiting; retry with the same ORDER_ID"
            raise WriterUnavailable(msg) from None
        return await future

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [] if first is None else [first]
            stop = first is None
            while len(batch) < self.max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    continue
                batch.append(item)
            if batch:
                await self._commit(batch)
            if stop and self._queue.empty():
                return

    async def _commit(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            outcomes = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.ledger.place_orders, [p.request for p in batch]
            )
        except PersistenceError as error:
            self.metrics.failed(len(batch))
            log.error("batch of %d not committed: %s", len(batch), error)
            failure = WriterUnavailable(f"database unavailable: {error}")
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(failure)
            if self.on_failure is not None:
                await asyncio.to_thread(self.on_failure)
            return
        except Exception as error:
            log.exception("batch of %d failed", len(batch))
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        faults.hit("after_commit")
        elapsed = time.perf_counter() - started
        stored = [o.answer.RESPONSE for o in outcomes if o.stored]
        self.metrics.committed(stored, len(batch), elapsed)
        log.debug(
            "committed %d orders in %.1f ms", len(batch), 1e3 * (time.perf_counter() - started)
        )
        for pending, outcome in zip(batch, outcomes, strict=True):
            if not pending.future.done():
                pending.future.set_result(outcome)
            answer = outcome.answer
            orders_log.info(
                "order_id=%s seq=%s strategy=%s instrument=%s position=%s response=%s"
                " accepted=%d rejected=%d%s",
                answer.order_id,
                answer.sequence,
                answer.strategy,
                answer.instrument,
                answer.position,
                answer.RESPONSE,
                len(answer.accepted_for),
                len(answer.rejected_for),
                " order_id_reused=yes" if outcome.reused_id else "",
            )
