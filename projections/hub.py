"""One tail of the store per process, fanned out in memory to every stream subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ledger.application import Ledger
from ledger.overrides import storage as overrides
from projections.feed import TOPICS, Feed, StreamEvent, StreamFilter, shared_writes

log = logging.getLogger(__name__)

RING_EVENTS = 20_000  # recent events kept for subscribers that join or resume
RING_BYTES = 32 * 2**20  # ... and at most this many bytes of them
QUEUE_BYTES = 8 * 2**20  # a subscriber this far behind is disconnected: it resumes by id
QUEUE_EVENTS = 50_000
HISTORY_PAGE = 100  # stored events read at a time for a subscriber resuming from the past
# ... and at most about this many bytes of frames handed to it at a time, from the store or the
# ring: a page of orders fanned out to 4,000 users was ~44 MB, held whole by a client that read
# nothing (20 such clients took a worker to 2 GB); and the ring's backlog offered at once to a
# subscriber more than QUEUE_BYTES behind cut it off before it was sent anything, every time.
CATCH_UP_BYTES = 2**20
# Bytes of those pages held for subscribers catching up at once (each until it has gone out,
# a stalled client's for up to the stall limit): past it, the next page waits its turn.
CATCH_UP_HELD = 64 * 2**20
IDLE_STOP = 30.0  # seconds the tail keeps running after its last subscriber left
RETRY_AFTER = 1.0  # seconds between attempts when the database fails under the tail


class Subscriber:
    """One stream client: the events that matched since its cursor, bounded."""

    def __init__(self, want: StreamFilter, cursor: int, abort: Callable[[], None] | None) -> None:
        self.want = want
        self.cursor = cursor  # nothing at or before this sequence is delivered again
        self.queue: deque[StreamEvent] = deque()
        self.queued_bytes = 0
        self.ready = asyncio.Event()
        self.overflowed = False
        self.closed = False
        self._abort = abort

    def offer(self, events: Sequence[StreamEvent], size: int | None = None) -> None:
        """Queue the new, wanted events (`size`: their bytes if known); overflow disconnects."""
        if self.overflowed:
            return
        cursor = self.cursor
        if events and events[0].sequence <= cursor:
            events, size = [event for event in events if event.sequence > cursor], None
        if not self.want.everything:
            events, size = [event for event in events if self.want.matches(event)], None
        if not events:
            return
        # One call per subscriber per batch, not per event: with hundreds of subscribers the
        # fan-out ran on the HTTP process's loop at ~1.5 us per event each (measured: 300
        # streams cut a worker's orders from ~900/s to 33/s).
        self.queue.extend(events)
        self.cursor = events[-1].sequence
        self.queued_bytes += size if size is not None else sum(len(e.frame) for e in events)
        if self.queued_bytes > QUEUE_BYTES or len(self.queue) > QUEUE_EVENTS:
            self.overflowed = True
            self.queue.clear()
            if self._abort is not None:
                self._abort()  # the socket may be stuck: close it, do not wait for it
        self.ready.set()

    def take(self) -> list[StreamEvent]:
        """Everything queued, oldest first."""
        taken = list(self.queue)
        self.queue.clear()
        self.queued_bytes = 0
        self.ready.clear()
        return taken

    def close(self) -> None:
        """End this subscriber's stream (the server is stopping)."""
        self.closed = True
        self.ready.set()


class Hub:
    """Tails the store in one thread while anyone listens; keeps recent events in a ring."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.feed = Feed(self._books)
        self.ring: deque[StreamEvent] = deque()
        self.ring_bytes = 0
        self.floor = 0  # every stream event after `floor` is in the ring (while running)
        self.position = 0  # the last sequence the tail has read
        self.subscribers: set[Subscriber] = set()
        self.running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._subscription: Any = None
        self._thread: threading.Thread | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._starting = asyncio.Lock()
        self._generation = 0  # a stopped tail's last batches, arriving late, are dropped
        self.streams = 0  # streams answered and not ended (at most LEDGER_MAX_STREAMS)
        self.held = 0  # bytes of catch-up pages reserved or held (CATCH_UP_HELD)
        self._turns: deque[asyncio.Future[None]] = deque()  # reserve()s waiting, oldest first

    def _books(self) -> list[tuple[str, str]]:
        roster = self.ledger.roster()
        return roster.books if roster is not None else []

    async def start(self) -> None:
        """Start the tail at the store's present, unless it runs."""
        async with self._starting:
            if self.running:
                return
            self._loop = asyncio.get_running_loop()
            present = await asyncio.to_thread(self.ledger.last_sequence)
            self.ring.clear()
            self.ring_bytes = 0
            self.floor = self.position = present
            self._stop = threading.Event()
            self._generation += 1
            self._thread = threading.Thread(
                target=self._tail,
                args=(self._stop, self._generation),
                name="stream-tail",
                daemon=True,
            )
            self.running = True
            self._thread.start()

    def stop(self) -> None:
        """Stop the tail thread; subscribers keep waiting (a restart resumes them)."""
        self.running = False
        self._stop.set()
        subscription = self._subscription
        if subscription is not None:
            subscription.stop()

    def close(self) -> None:
        """The server stops: end every stream and the tail."""
        for subscriber in list(self.subscribers):
            subscriber.close()
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def covers(self, cursor: int) -> bool:
        """Whether the ring holds every event after `cursor` (the tail runs and has passed it)."""
        return self.running and cursor >= self.floor

    async def reserve(self) -> int:
        """Reserve a catch-up page's bytes within CATCH_UP_HELD, in turn: past it, wait behind
        the clients that asked before (one giving a page back and asking again queues too)."""
        if self.held < CATCH_UP_HELD and not self._turns:
            self.held += CATCH_UP_BYTES
            return CATCH_UP_BYTES
        turn = asyncio.get_running_loop().create_future()
        self._turns.append(turn)
        try:
            await turn  # granted: its bytes are counted already (_grant)
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release(CATCH_UP_BYTES)  # granted as its client left: passed on
            elif turn in self._turns:  # else a grant passed over it (_grant)
                self._turns.remove(turn)
            raise
        return CATCH_UP_BYTES

    def settle(self, reserved: int, size: int) -> int:
        """A page read: count its real size instead of what was reserved; returns it."""
        self.held += size - reserved
        self._grant()
        return size

    def release(self, size: int) -> None:
        """A page has gone out (or never will). Never waits: a subscriber joins right after
        its last page, with nothing in between."""
        self.held -= size
        self._grant()

    def _grant(self) -> None:
        while self._turns and self.held < CATCH_UP_HELD:
            turn = self._turns.popleft()
            # A waiter cancelled (its client gone) whose handler has not run yet: given
            # bytes, it would keep them for good, and set_result would raise in the caller.
            if turn.done():
                continue
            self.held += CATCH_UP_BYTES
            turn.set_result(None)

    def left_early(self) -> None:
        """A client left before joining live: the tail stops if nobody else listens."""
        self._idle_unless_listened()

    def _after(self, cursor: int) -> list[StreamEvent]:
        """The ring's events after `cursor`, oldest first: read from the newest end, so a
        subscriber starting at the present costs nothing however full the ring is."""
        newer = []
        for event in reversed(self.ring):
            if event.sequence <= cursor:
                break
            newer.append(event)
        newer.reverse()
        return newer

    def join(self, want: StreamFilter, cursor: int, abort: Callable[[], None] | None) -> Subscriber:
        """Subscribe after `cursor` (covered): what the ring holds now, then everything new.

        Join once `recent` has all that matches after `cursor`: more than QUEUE_BYTES of it
        would disconnect the subscriber at once.
        """
        assert self.covers(cursor)
        subscriber = Subscriber(want, cursor, abort)
        subscriber.offer(self._after(cursor))
        self.subscribers.add(subscriber)
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        return subscriber

    def leave(self, subscriber: Subscriber) -> None:
        """Unsubscribe; the tail stops a while after the last subscriber left."""
        self.subscribers.discard(subscriber)
        self._idle_unless_listened()

    def _idle_unless_listened(self) -> None:
        if not self.subscribers and self.running and self._loop is not None:
            if self._idle is not None:
                self._idle.cancel()
            self._idle = self._loop.call_later(IDLE_STOP, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        self._idle = None
        if not self.subscribers:
            self.stop()

    def history(
        self,
        cursor: int,
        want: StreamFilter,
        stop: int,
        budget: int | None = None,
        limit: int = HISTORY_PAGE,
    ) -> tuple[list[StreamEvent], int]:
        """Stored events after `cursor` up to `stop` that match, of about `budget` bytes at
        most (CATCH_UP_BYTES; one event at least) among the next `limit`, and the new cursor
        (a thread)."""
        budget = CATCH_UP_BYTES if budget is None else budget
        notifications = self.ledger.recorder.select_notifications(
            start=cursor, limit=limit, stop=stop, topics=want.topics(), inclusive_of_start=False
        )
        found = []
        size = 0
        for notification in notifications:
            event = self.feed.translate(
                self.ledger.mapper.to_domain_event(notification), notification.id, want
            )
            if event is not None:
                found.append(event)
                size += len(event.frame)
                if size >= budget:
                    return found, notification.id
        if len(notifications) < limit:
            return found, stop
        return found, notifications[-1].id

    def recent(
        self, want: StreamFilter, cursor: int, budget: int | None = None
    ) -> tuple[list[StreamEvent], bool]:
        """The ring's events after `cursor` (covered) that match, of about `budget` bytes at
        most (CATCH_UP_BYTES); True when they are all of them (few enough for `join`)."""
        budget = CATCH_UP_BYTES if budget is None else budget
        found = []
        size = 0
        for event in self._after(cursor):
            if want.matches(event):
                found.append(event)
                size += len(event.frame)
                if size >= budget:
                    return found, False
        return found, True

    def _publish(self, events: list[StreamEvent], position: int, generation: int) -> None:
        """On the loop: add the tail's events to the ring and offer them to every subscriber."""
        if generation != self._generation or not self.running:
            return
        size = sum(len(event.frame) for event in events)
        for event in events:
            self.ring.append(event)
            self.ring_bytes += len(event.frame)
            while len(self.ring) > RING_EVENTS or self.ring_bytes > RING_BYTES:
                gone = self.ring.popleft()
                self.ring_bytes -= len(gone.frame)
                self.floor = gone.sequence
        everything: list[StreamEvent] | None = None
        for subscriber in self.subscribers:
            if events and subscriber.want.everything and subscriber.cursor < events[0].sequence:
                if everything is None:
                    everything = shared_writes(events)
                subscriber.offer(everything, size)
            else:
                subscriber.offer(events, size)
        self.position = max(self.position, position)

    def _tail(self, stop: threading.Event, generation: int) -> None:
        """The tail thread: read new events, translate them, hand them to the loop in batches."""
        position = self.position
        while not stop.is_set():
            try:
                with self.ledger.recorder.subscribe(gt=position, topics=TOPICS) as subscription:
                    self._subscription = subscription
                    overrides.set_page_size(subscription, HISTORY_PAGE)
                    if stop.is_set():
                        return
                    for notification in subscription:
                        batch = [notification]
                        while len(batch) < HISTORY_PAGE and overrides.buffered(subscription):
                            batch.append(next(subscription))
                        events = []
                        for stored in batch:
                            domain_event = self.ledger.mapper.to_domain_event(stored)
                            event = self.feed.translate(domain_event, stored.id)
                            if event is not None:
                                events.append(event)
                        position = batch[-1].id
                        self._hand_over(events, position, generation)
            except Exception as failure:
                log.warning("stream tail stopped (%s); resuming after %d", failure, position)
                stop.wait(RETRY_AFTER)
            finally:
                self._subscription = None

    def _hand_over(self, events: list[StreamEvent], position: int, generation: int) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: the server stopped
                loop.call_soon_threadsafe(self._publish, events, position, generation)
