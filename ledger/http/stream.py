"""GET /stream: the ledger's events as Server-Sent Events, with filters and resume."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import Any

from eventsourcing.persistence import PersistenceError
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ledger.http.lanes import POLLS, Lane
from ledger.http.queries import INT64, BadQuery, parse
from ledger.http.responses import error
from ledger.http.spec import Doc, documented
from ledger.http.state import services
from ledger.names import name_problem
from ledger.overrides.uvicorn_http import ABORT, ENDLESS, STALL
from projections import hub as hubs
from projections.feed import KINDS, WRITE, Kind, StreamEvent, StreamFilter, in_writes
from projections.hub import Hub, Subscriber

log = logging.getLogger(__name__)

RETRY_MS = 2000  # the reconnection delay browsers are told
# Resuming subscribers read the past here, off the read lane: a thousand of them resuming at
# once wait their turn instead of being told the server is busy.
HISTORY = Lane("ledger-stream", 2, None)


def _names(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    names = value.split(",")
    for name in names:
        problem = name_problem(name)
        if problem is not None:
            raise ValueError(f"{name[:64]!r} {problem}")
    return frozenset(names)


class StreamQuery(BaseModel):
    """Which events to send, and where to start."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: str | None = Field(
        None, description="comma list: orders decided for, positions and profiles of these users"
    )
    strategy: str | None = Field(None, description="comma list of strategies")
    instrument: str | None = Field(
        None, description="comma list of instruments (profile events always pass)"
    )
    types: str | None = Field(
        None, description="comma list of event types: order, position, profile"
    )
    after: int | None = Field(
        None, ge=0, le=INT64, description="resume after this sequence (as the Last-Event-ID header)"
    )

    @field_validator("user", "strategy", "instrument")
    @classmethod
    def _valid_names(cls, value: str | None) -> str | None:
        _names(value)
        return value

    @field_validator("types")
    @classmethod
    def _valid_types(cls, value: str | None) -> str | None:
        if value is not None:
            unknown = [t for t in value.split(",") if t not in KINDS]
            if unknown:
                raise ValueError(
                    f"unknown type(s) {', '.join(unknown)[:64]}: use {', '.join(KINDS)}"
                )
        return value

    def want(self) -> StreamFilter:
        """The filter these parameters describe."""
        kinds: frozenset[Kind] | None = (
            frozenset(k for k in KINDS if k in self.types.split(",")) if self.types else None
        )
        return StreamFilter(
            _names(self.user),
            _names(self.strategy),
            _names(self.instrument),
            kinds,
        )


def resume_point(request: Request, query: StreamQuery) -> int | None:
    """Where the client resumes: ?after=N or Last-Event-ID (BadQuery when that is not a number)."""
    header = request.headers.get("last-event-id")
    if query.after is not None or header is None or header == "":
        return query.after
    if not header.isascii() or not header.isdigit() or int(header) > INT64:
        raise BadQuery({"Last-Event-ID": "must be a sequence number (an event's id)"})
    return int(header)


async def events(
    hub: Hub,
    want: StreamFilter,
    cursor: int,
    abort: Callable[[], None] | None,
) -> AsyncIterator[Any]:
    """The retry hint, the stored events after `cursor`, then the live ones, in sequence order."""
    yield ServerSentEvent(retry=RETRY_MS)
    loop = asyncio.get_running_loop()
    limit = hubs.HISTORY_PAGE  # stored events read for the next page
    subscriber: Subscriber | None = None
    try:
        await hub.start()
        # Catching up: the past at the client's pace, a page at a time, from the store and
        # then from the ring, until what is left fits in a live subscriber's queue.
        while (found := await _next_page(hub, want, cursor, limit)) is not None:
            page, after, held = found
            try:
                # A page is one event at least, whatever its size: the reservation is settled.
                size = sum(len(event.frame) for event in page)
                held = hub.settle(held, size)
                # Big events (a fan-out to thousands): read about a page's worth of them next
                # time, not HISTORY_PAGE to keep a few; small ones: back up to HISTORY_PAGE.
                full = size >= hubs.CATCH_UP_BYTES
                limit = min(len(page) if full else limit * 2, hubs.HISTORY_PAGE) or 1
                for frames in writes(page):
                    # A live subscriber that reads nothing is cut when its queue overflows; one
                    # catching up holds a page until it reads: it is cut after STALL seconds.
                    timer = loop.call_later(STALL, abort) if abort is not None else None
                    try:
                        yield frames
                    finally:
                        if timer is not None:
                            timer.cancel()
            finally:
                hub.release(held)
            cursor = after
        subscriber = hub.join(want, cursor, abort)
    except PersistenceError as failure:
        # The client reconnects after `retry` and resumes from the last id it received.
        log.warning("a stream ended: the database failed (%s)", failure)
        return
    finally:
        if subscriber is None:  # gone while catching up: the tail need not run for it
            hub.left_early()
    try:
        while True:
            await subscriber.ready.wait()
            if subscriber.closed:
                return
            if subscriber.overflowed:
                log.info("a stream subscriber fell behind; disconnected, it resumes by id")
                return
            # What queued since the last send goes out in writes of up to WRITE bytes, not one
            # per event: uvicorn waits for the client before a write, not during one, so a
            # bigger write would sit whole in this subscriber's socket buffer.
            for frames in writes(subscriber.take()):
                yield frames
    finally:
        hub.leave(subscriber)


async def _next_page(
    hub: Hub, want: StreamFilter, cursor: int, limit: int
) -> tuple[list[StreamEvent], int, int] | None:
    """The next page after `cursor`, the cursor after it and the bytes reserved for it; None
    once the rest fits in a live subscriber's queue (then join: nothing awaited since)."""
    while True:
        if hub.covers(cursor):
            if hub.recent(want, cursor)[1]:
                return None
            held = await hub.reserve()  # before the page is taken: waiting, it holds nothing
            page, complete = hub.recent(want, cursor) if hub.covers(cursor) else ([], False)
            if not page or complete:  # moved on meanwhile: look again (at once if complete)
                hub.release(held)
                continue
            return page, page[-1].sequence, held
        if not hub.running:  # stopped while idle, between two pages
            await hub.start()
            continue
        held = await hub.reserve()  # what all clients catching up hold is bounded
        try:
            page, after = await HISTORY.run(partial(_page, hub, cursor, want, hub.floor, limit))
        except BaseException:
            hub.release(held)
            raise
        return page, after, held


def writes(events: list[StreamEvent], limit: int = WRITE) -> Iterator[bytes]:
    """The events' frames joined into writes of at most `limit` bytes (a bigger frame alone;
    projections.feed.in_writes)."""
    return (frames for _, frames in in_writes(events, limit))


def _page(
    hub: Hub, cursor: int, want: StreamFilter, stop: int, limit: int, _: Any
) -> tuple[list[StreamEvent], int]:
    return hub.history(cursor, want, stop, limit=limit)


STREAM_DOC = (
    "Server-Sent Events: `order` (the answer POST /order gave, with `received_at`), `position`"
    " (opened or closed for one user) and `profile` (a user took up, changed or dropped a"
    " strategy). Each event's `id` is its store sequence. Resume with `Last-Event-ID` or"
    " `after`: every matching event after it, then live, with no gap and no repeat. Without"
    " either, the stream starts now. A comment heartbeat keeps idle connections open; a client"
    " too slow to keep up is disconnected and resumes by id."
)


@documented(
    Doc(
        "The ledger's events, live",
        query=StreamQuery,
        description=STREAM_DOC,
        media_type="text/event-stream",
        errors={
            404: "after / Last-Event-ID is beyond the store's last sequence",
            422: "a query parameter or Last-Event-ID is not usable",
            503: "no database, or too many streams open (Retry-After)",
        },
    )
)
async def stream(request: Request) -> Response:
    """Open a stream of events matching the filters."""
    running = services(request)
    hub, most = running.hub, running.settings.max_streams
    # Well below the process's connections (4,096): 4,100 idle streams left no room for an
    # order's connection, refused without an answer. Checked first (a refused stream costs
    # no query) and again after the reads below, with no await before CountedStream counts.
    if hub.streams >= most:
        return too_many(most)
    try:
        query = parse(StreamQuery, request.query_params)
        after = resume_point(request, query)
    except BadQuery as bad:
        return error(422, "bad query parameter", fields=bad.fields)
    try:
        top = await POLLS.run(lambda _: running.ledger.last_sequence())
    except PersistenceError as failure:
        return error(503, f"database unavailable: {failure}")
    if after is not None and after > top:
        return error(
            404,
            "the stream cannot resume there",
            fields={"after": f"{after} is beyond the store's last sequence {top}"},
        )
    if hub.streams >= most:  # others opened while this one read the store
        return too_many(most)
    abort = request.scope.get("extensions", {}).get(ABORT)
    return CountedStream(
        hub,
        events(hub, query.want(), top if after is None else after, abort),
        ping=running.settings.stream_heartbeat,
    )


def too_many(most: int) -> Response:
    """503: this process has `most` streams open."""
    return error(
        503,
        f"{most} streams are open on this server process; retry later",
        headers={"Retry-After": "5"},
    )


class CountedStream(EventSourceResponse):
    """A stream counted in its hub's `streams` from its answer until it ends, however."""

    def __init__(self, hub: Hub, content: Any, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.hub = hub
        hub.streams += 1

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        endless = scope.get("extensions", {}).get(ENDLESS)
        if endless is not None:
            endless()  # a client that closes its side has left: its place is free at once
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.hub.streams -= 1


def routes() -> list[BaseRoute]:
    """The stream."""
    return [Route("/stream", stream, methods=["GET"])]
