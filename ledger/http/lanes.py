"""Where reads run: bounded thread pools that shed load, and answers sent as they are encoded."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from projections.views import Cancellation

T = TypeVar("T")

READ_THREADS = 4  # reads (pages) running at once per process, each on a connection
READ_QUEUE = 4  # reads that may wait for one of those threads; more answer 503 busy
# Reads as of a past sequence one at a time: one far back reads and sorts every trade closed
# since (up to the read's statement timeout), and must not take the other reads' threads.
HISTORY_THREADS = 1
HISTORY_QUEUE = 2
POLL_THREADS = 4  # min_sequence polls: short statements, kept off the read threads
RETRY_AFTER = 1  # seconds a client told "busy" should wait


class PiecesResponse(Response):
    """A JSON body sent as the pieces it was encoded in: never joined into one copy."""

    media_type = "application/json"

    def __init__(self, pieces: list[bytes]) -> None:
        super().__init__(b"")
        self.pieces = pieces
        self.headers["content-length"] = str(sum(len(piece) for piece in pieces))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        for n, piece in enumerate(self.pieces):
            more = n < len(self.pieces) - 1
            await send({"type": "http.response.body", "body": piece, "more_body": more})


class Busy(Exception):
    """Every read thread is taken and the queue is full: shed the read, do not queue it."""


class Lane:
    """A thread pool of its own for one kind of work; admits at most threads + queue jobs.

    A job gets a Cancellation: when its caller is cancelled (timeout, client gone), the job's
    SQL statement is cancelled and the job stops at its next check, so no thread keeps working
    for an answer nobody will read. Its admission slot is freed when the job really ends.
    """

    def __init__(self, name: str, threads: int, queue: int | None) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self._slots = threading.BoundedSemaphore(threads + queue) if queue is not None else None

    async def run(self, job: Callable[[Cancellation], T]) -> T:
        """Run `job` on this lane's threads; Busy when it admits no more."""
        slots = self._slots
        if slots is not None and not slots.acquire(blocking=False):
            raise Busy
        cancellation = Cancellation()

        def work() -> T:
            cancellation.check()  # abandoned while it waited for a thread
            return job(cancellation)

        try:
            future: Future[T] = self._executor.submit(work)
        except BaseException:
            if slots is not None:
                slots.release()
            raise
        if slots is not None:
            future.add_done_callback(lambda _: slots.release())
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            cancellation.cancel()
            raise


READS = Lane("ledger-read", READ_THREADS, READ_QUEUE)
HISTORY = Lane("ledger-as-of", HISTORY_THREADS, HISTORY_QUEUE)
POLLS = Lane("ledger-poll", POLL_THREADS, None)
