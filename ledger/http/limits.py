"""Limits on what one client can make a process hold: request headers, and unread answers."""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.http.lanes import RETRY_AFTER
from ledger.http.responses import send_error
from ledger.overrides.uvicorn_http import ABORT, STALL

log = logging.getLogger(__name__)

MAX_HEADERS = 16 * 1024
# Answers longer than SMALL are written CHUNK by CHUNK. The server writes the next chunk only
# once the client has read most of the last, so what waits for a slow reader is about one
# chunk; an answer's bytes count against BUDGET until then. Measured before: 60 clients asking
# for GET /strategies (14 MB at 10,000 users) and reading nothing held 1 GB in the worker.
SMALL = 64 * 1024
CHUNK = 64 * 1024
BUDGET = 64 * 1024 * 1024  # bytes of unread answers per HTTP process
READS = frozenset({"GET", "HEAD"})


class HeaderLimit:
    """ASGI middleware: 431 when the request's headers add up to more than MAX_HEADERS bytes;
    404 for a path ending in a newline."""

    def __init__(self, app: ASGIApp, limit: int = MAX_HEADERS) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            size += len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            if size > self.limit:
                message = f"request headers larger than {self.limit} bytes"
                await send_error(send, 431, message, (b"connection", b"close"))
                return
            if scope["path"].endswith("\n"):
                # Starlette's route patterns end in `$`, which also matches before a final
                # newline: POST /order%0A stored an order, GET /orders/x%0A read order x.
                await send_error(send, 404, "Not Found")
                return
        await self.app(scope, receive, send)


def content_length(message: Message) -> int | None:
    """The length a response start announces, or None (a stream)."""
    for name, value in message.get("headers", ()):
        if name == b"content-length":  # ASGI header names are lower case
            return int(value)
    return None


class AnswerBudget:
    """ASGI middleware: long answers go out in chunks, within a budget of unread bytes.

    A read whose answer does not fit in what is left of the budget gets 503 busy (the first
    one always fits, however long). Answers to writes are never refused (their change is
    already stored) but count against it. A client that reads nothing of an answer for STALL
    seconds is disconnected, so an unread answer cannot hold its bytes for ever.
    """

    def __init__(
        self,
        app: ASGIApp,
        budget: int = BUDGET,
        chunk: int = CHUNK,
        small: int = SMALL,
        stall: float = STALL,
    ) -> None:
        self.app = app
        self.budget, self.chunk, self.small, self.stall = budget, chunk, small, stall
        self.held = 0  # bytes of the long answers being written now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        taken = 0
        refused = False

        async def budgeted(message: Message) -> None:
            nonlocal taken, refused
            if refused:
                return  # the answer replaced by a 503: its body goes nowhere
            if message["type"] == "http.response.start":
                size = content_length(message)
                # uvicorn writes no body for HEAD: nothing to hold.
                if size is not None and size > self.small and scope["method"] != "HEAD":
                    if self.held and self.held + size > self.budget and scope["method"] in READS:
                        refused = True
                        log.warning("answer of %d bytes refused: %d unread held", size, self.held)
                        await send_error(
                            send,
                            503,
                            "busy",
                            (b"retry-after", str(RETRY_AFTER).encode()),
                        )
                        return
                    taken = size
                    self.held += size
            elif message["type"] == "http.response.body" and taken:
                await self._chunked(scope, send, message)
                return
            await send(message)

        try:
            await self.app(scope, receive, budgeted)
        finally:
            self.held -= taken

    async def _chunked(self, scope: Scope, send: Send, message: Message) -> None:
        """Send a body in chunks, each after the client has read the one before (or cut it)."""
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        # Sliced as it goes (one chunk's copy at a time). The answer's end is an empty
        # message: uvicorn sends it only once the client has read nearly all before it, so
        # the budget is given back when the answer is really gone.
        starts = [*range(0, len(body), self.chunk)]
        if not more:
            starts.append(len(body))
        try:
            for n, start in enumerate(starts):
                last = n == len(starts) - 1
                async with asyncio.timeout(self.stall):
                    await send(
                        {
                            "type": "http.response.body",
                            "body": body[start : start + self.chunk],  # the last: b""
                            "more_body": more or not last,
                        }
                    )
        except TimeoutError:
            log.info("client read nothing of an answer for %ss: disconnecting", self.stall)
            abort = scope.get("extensions", {}).get(ABORT)
            if abort is not None:
                abort()
