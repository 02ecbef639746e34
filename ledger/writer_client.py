"""The HTTP worker's side of the writer: orders go to the writer process owning their strategy."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from pathlib import Path

from ledger.answers import OrderRequest
from ledger.wire import (
    Answered,
    Request,
    WireError,
    WriterUnavailable,
    decode_answers,
    encode_orders,
    partition,
    read_frame,
    recent_failure,
)

log = logging.getLogger(__name__)

RECONNECT = 0.1  # seconds between attempts while a writer restarts


class Link:
    """One connection to one writer process, re-established whenever it drops."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stream: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[Answered]] = {}
        self._outbox: list[tuple[int, Request]] = []
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.failure: tuple[str, float] | None = None  # the writer's last commit failure

    @property
    def queued(self) -> int:
        """Orders sent and not answered yet."""
        return len(self._pending)

    def start(self) -> None:
        """Connect in the background, and again after every drop."""
        self._task = asyncio.create_task(self._run(), name=f"link-{self.path.name}")

    async def stop(self) -> None:
        """Close the connection; orders still waiting get WriterUnavailable."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._drop("the server is stopping")

    async def place(self, request: Request) -> Answered:
        """Send the order (or change) with the next batch; wait for its answer."""
        if self._stream is None:
            msg = "the writer is restarting; send the request again (an order: same ORDER_ID)"
            raise WriterUnavailable(msg)
        n = next(self._ids) & 0xFFFFFFFF  # the wire's ids are 32 bits; they wrap
        future: asyncio.Future[Answered] = asyncio.get_running_loop().create_future()
        self._pending[n] = future
        if not self._outbox:
            # Every order placed in this turn of the event loop goes in one frame.
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append((n, request))
        try:
            return await future
        finally:
            self._pending.pop(n, None)  # answered, or given up by the client

    def _flush(self) -> None:
        batch, self._outbox = self._outbox, []
        if self._stream is None or self._stream.is_closing():
            self._drop("the writer went away", [n for n, _ in batch])
            return
        try:
            self._stream.write(encode_orders(batch))
        except Exception as error:
            log.exception("could not send a batch of %d orders", len(batch))
            self._drop(f"not sent to the writer: {error}", [n for n, _ in batch])

    async def _run(self) -> None:
        while True:
            try:
                reader, self._stream = await asyncio.open_unix_connection(str(self.path))
            except OSError:
                await asyncio.sleep(RECONNECT)  # the writer is not listening yet
                continue
            self.connected.set()
            log.info("connected to the writer at %s", self.path)
            try:
                while True:
                    for n, answered in decode_answers(await read_frame(reader)):
                        self.failure = (
                            (answered.body.decode(), time.monotonic()) if answered.failed else None
                        )
                        future = self._pending.get(n)
                        if future is not None and not future.done():
                            future.set_result(answered)
            except (asyncio.IncompleteReadError, ConnectionError, WireError) as lost:
                log.warning("lost the writer at %s (%s); reconnecting", self.path, lost)
            finally:
                self.connected.clear()
                stream, self._stream = self._stream, None
                stream.close()
                self._drop(
                    "the writer went away; the request may have committed (a profile document"
                    " in part): send it again (an order: with the same ORDER_ID)"
                )

    def _drop(self, reason: str, ids: list[int] | None = None) -> None:
        for n in list(self._pending) if ids is None else ids:
            future = self._pending.pop(n, None)
            if future is not None and not future.done():
                future.set_exception(WriterUnavailable(reason))


class RemoteWriter:
    """The Desk of an HTTP worker: one link per writer process, strategies split by hash."""

    def __init__(self, paths: list[Path]) -> None:
        self.links = [Link(path) for path in paths]

    @property
    def queued(self) -> int:
        """Orders sent to the writers and not answered yet."""
        return sum(link.queued for link in self.links)

    def start(self) -> None:
        """Connect to every writer."""
        for link in self.links:
            link.start()

    @property
    def failing(self) -> str | None:
        """Why a writer's last commit failed, until it succeeds again."""
        return next((f for link in self.links if (f := recent_failure(link.failure))), None)

    async def wait_connected(self, timeout: float) -> None:
        """Until every writer is reachable (start-up), or TimeoutError."""
        async with asyncio.timeout(timeout):
            for link in self.links:
                await link.connected.wait()

    async def stop(self) -> None:
        """Close every link."""
        for link in self.links:
            await link.stop()

    @property
    def partitions(self) -> int:
        """One partition of the strategies per writer process."""
        return len(self.links)

    async def place(self, request: Request) -> Answered:
        """The answer from the writer owning the order's strategy, or the change's partition."""
        if isinstance(request, OrderRequest):
            return await self.links[partition(request.strategy, len(self.links))].place(request)
        return await self.links[request.partition].place(request)
