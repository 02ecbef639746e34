"""The writer process: owns the ledger, takes batches of orders from HTTP workers over a socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from ledger.batch import Outcome
from ledger.bootstrap import Services
from ledger.settings import Settings
from ledger.wire import (
    ORDERS,
    Answered,
    Request,
    WireError,
    WriterUnavailable,
    decode_orders,
    encode_answers,
    read_frame,
)
from ledger.writer import Writer

log = logging.getLogger(__name__)


class WriterServer:
    """Serves one writer to any number of worker connections; batches merge in its queue."""

    def __init__(self, writer: Writer, path: Path) -> None:
        self.writer = writer
        self.path = path
        self._server: asyncio.Server | None = None
        self._streams: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on the socket (a stale one from a killed writer is replaced)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        self.path.chmod(0o600)  # only this user's processes may place orders through it

    def stop_listening(self) -> None:
        """Take no new connections; those open keep getting answers."""
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        """Close every connection (after the writer has answered what it queued)."""
        for stream in list(self._streams):
            stream.close()
        if self._handlers:
            # Each handler sees the end of its stream and returns, rather than being
            # cancelled (and logged) by asyncio.run's clean-up.
            await asyncio.wait(self._handlers, timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, stream: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        self._streams.add(stream)
        answering: set[asyncio.Task[None]] = set()
        try:
            while True:
                payload = await read_frame(reader)
                if payload[:1] != ORDERS:
                    msg = f"unexpected frame {payload[:1]!r}"
                    raise WireError(msg)
                # One task per batch, not per order: the next batch is read while this one
                # waits for its commit, so the writer's queue merges them.
                task = asyncio.create_task(self._answer(decode_orders(payload[1:]), stream))
                answering.add(task)
                task.add_done_callback(answering.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the worker went away
        except WireError as bad:
            log.warning("closing a worker connection: %s", bad)
        finally:
            if answering:
                await asyncio.wait(answering)
            self._streams.discard(stream)
            stream.close()

    async def _answer(self, batch: list[tuple[int, Request]], stream: asyncio.StreamWriter) -> None:
        # Answered as they commit, not when the whole frame has: an order that shares a frame
        # with a document must not wait for every slice of it.
        waiting: dict[asyncio.Future[Outcome], int] = {}
        answers: list[tuple[int, Answered]] = []
        for n, request in batch:
            try:
                waiting[self.writer.enqueue(request)] = n
            except WriterUnavailable as refused:
                answers.append((n, Answered(str(refused).encode(), failed=True)))
        while True:
            if answers and not stream.is_closing():
                stream.write(encode_answers(answers))
                with contextlib.suppress(ConnectionError):
                    await stream.drain()
            if not waiting:
                return
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            answers = [(waiting.pop(future), _answered(future)) for future in done]


def _answered(future: asyncio.Future[Outcome]) -> Answered:
    failure = future.exception()
    if failure is None:
        return Answered.of(future.result())
    return Answered((str(failure) or "not committed").encode(), failed=True)


async def _serve(settings: Settings, path: Path, partition: int, writers: int) -> None:
    services = Services(settings, role="writer", writers=writers, partition=partition)
    await services.start()
    server = WriterServer(services.writer, path)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await server.start()
        log.info("writer %d listening on %s", os.getpid(), path)
        ended = asyncio.ensure_future(services.writer.wait_ended())
        stop = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({ended, stop}, return_when=asyncio.FIRST_COMPLETED)
        if ended.done():
            # A writer that died cannot answer: exit, and the supervisor starts a new one.
            log.error("the writer task ended; exiting to be started again")
        else:
            log.info("writer stopping: answering the orders queued")
        for waiter in (ended, stop):
            waiter.cancel()
    finally:
        server.stop_listening()
        await services.stop()  # the writer answers what is queued before it stops
        await server.close()


def run(settings: Settings, path: Path, partition: int = 0, writers: int = 1) -> int:
    """Run the writer of one partition of the strategies until SIGTERM."""
    asyncio.run(_serve(settings, path, partition, writers))
    return 0
