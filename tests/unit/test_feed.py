"""The stream's filters, a subscriber's bounded queue, and `ledger tail`'s lines."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ledger.answers import PositionChange
from ledger.domain import Book, Order
from ledger.tail import line
from projections import feed as feed_module
from projections import hub
from projections.feed import Feed, StreamEvent, StreamFilter, frame, position_change
from projections.hub import Subscriber

AT = datetime(2026, 1, 2, tzinfo=UTC)
CLOSED: Any = Book.PositionClosed  # type: ignore[attr-defined]
ORDER = StreamEvent(9, "order", b"x", frozenset({"Ann", "Bo"}), "S_A", "ACC")
POSITION = StreamEvent(7, "position", b"x", frozenset({"Ann"}), "S_A", "ACC")
PROFILE = StreamEvent(3, "profile", b"x", frozenset({"Cy"}), "S_B", None)


@pytest.mark.parametrize(
    ("want", "passes"),
    [
        (StreamFilter(), {9, 7, 3}),
        (StreamFilter(users=frozenset({"Bo"})), {9}),
        (StreamFilter(users=frozenset({"Ann", "Cy"})), {9, 7, 3}),
        (StreamFilter(strategies=frozenset({"S_B"})), {3}),
        (StreamFilter(instruments=frozenset({"INFY"})), {3}),  # profiles carry no instrument
        (StreamFilter(instruments=frozenset({"ACC"}), kinds=frozenset({"order"})), {9}),
        (StreamFilter(kinds=frozenset({"position", "profile"})), {7, 3}),
    ],
)
def test_filters_combine_with_and(want: StreamFilter, passes: set[int]) -> None:
    assert {e.sequence for e in (ORDER, POSITION, PROFILE) if want.matches(e)} == passes


def test_frames_are_one_sse_message_with_id_and_type() -> None:
    text = frame(12, "order", {"a": "b\nc"}).decode()
    assert text == 'id: 12\r\nevent: order\r\ndata: {"a":"b\\nc"}\r\n\r\n'


def test_a_subscriber_gets_new_matching_events_once() -> None:
    async def run() -> list[int]:
        subscriber = Subscriber(StreamFilter(kinds=frozenset({"order"})), 5, None)
        for event in (PROFILE, POSITION, ORDER, ORDER):
            subscriber.offer([event])
        assert subscriber.ready.is_set()
        return [e.sequence for e in subscriber.take()]

    assert asyncio.run(run()) == [9]


def test_a_subscriber_takes_a_batch_after_its_cursor() -> None:
    async def run() -> list[int]:
        subscriber = Subscriber(StreamFilter(), POSITION.sequence, None)
        subscriber.offer(sorted((PROFILE, POSITION, ORDER), key=lambda e: e.sequence))
        subscriber.offer([ORDER])  # again: not new
        return [e.sequence for e in subscriber.take()]

    later = [e.sequence for e in (PROFILE, POSITION, ORDER) if e.sequence > POSITION.sequence]
    assert asyncio.run(run()) == sorted(later)


def test_a_subscriber_that_falls_behind_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "QUEUE_BYTES", 10)
    aborted: list[bool] = []

    async def run() -> Subscriber:
        subscriber = Subscriber(StreamFilter(), 0, lambda: aborted.append(True))
        for n in range(1, 4):
            subscriber.offer([StreamEvent(n, "order", b"12345", frozenset(), "S", "I")])
        return subscriber

    subscriber = asyncio.run(run())
    assert subscriber.overflowed
    assert aborted == [True]  # once, however many events come after
    assert subscriber.take() == []


def test_tail_lines_are_readable() -> None:
    order = {
        "RESPONSE": "ACCEPTED",
        "order_id": "o-1",
        "position": "BUY",
        "strategy": "S_A",
        "instrument": "ACC",
        "accepted_for": ["Ann"],
        "rejected_for": [{"user": "Bo", "reason": "ALREADY_OPEN"}],
        "reason": None,
    }
    assert line("order", "9", order) == (
        "#9 order ACCEPTED o-1: BUY S_A ACC for Ann; refused Bo ALREADY_OPEN"
    )
    position = {"user": "Ann", "strategy": "S_A", "instrument": "ACC", "order_id": "o-1"}
    assert line("position", "7", {**position, "action": "opened"}) == (
        "#7 position opened: Ann S_A ACC (order o-1)"
    )
    sized = {**order, "quantity": 5, "price": "12.5"}
    assert line("order", "10", sized).startswith("#10 order ACCEPTED o-1: BUY 5 @ 12.5 S_A ACC")
    closed = {
        **position,
        "action": "closed",
        "quantity": "2.5",
        "price": "11",
        "realised_pnl": "1.25",
    }
    assert line("position", "11", closed) == (
        "#11 position closed: Ann S_A ACC 2.5 @ 11 (order o-1) P&L 1.25"
    )
    profile = {"user": "Cy", "strategy": "S_B", "change": "dropped", "instruments": []}
    assert line("profile", "3", profile) == "#3 profile dropped: Cy S_B"
    assert line("other", "1", {"k": 1}) == "#1 other: " + orjson.dumps({"k": 1}).decode()


def test_position_events_carry_their_numbers_and_old_ones_the_defaults() -> None:
    closed = CLOSED(
        originator_id=uuid4(), originator_version=2, timestamp=CLOSED.create_timestamp(),
        instrument="ACC", order_id="s", buy_order_id="b", at=AT, quantity="2.5",
        price="10.1", entry_price="10.5",
    )  # fmt: skip
    change = position_change(closed, "Ann", "S_A")
    assert (change.action, change.quantity, change.price) == ("closed", "2.5", "10.1")
    assert (change.entry_price, change.realised_pnl) == ("10.5", "-1")  # -0.4 x 2.5
    old = SimpleNamespace(instrument="ACC", order_id="b", at=AT)  # stored before quantities
    assert position_change(old, "Ann", "S_A") == PositionChange(
        "Ann", "S_A", "ACC", "b", "closed", AT, "1", None, None, None
    )


def test_queued_frames_go_out_in_writes_of_bounded_size() -> None:
    from ledger.http.stream import writes

    events = [
        StreamEvent(n, "order", bytes([65 + n % 26]) * size, frozenset(), "S", "I")
        for n, size in enumerate([10, 30, 25, 100, 5, 5, 5])
    ]
    out = list(writes(events, limit=40))
    assert b"".join(out) == b"".join(e.frame for e in events)  # every frame, in order
    # A frame past the limit goes alone and whole: a heartbeat cannot land inside it.
    assert [len(w) for w in out] == [40, 25, 100, 15]
    assert list(writes([], limit=40)) == []


SIZES = st.sampled_from([10, 1000, 70_000, 200_000])
BATCHES = st.lists(
    st.tuples(st.lists(SIZES, max_size=5), st.floats(0, 1), st.booleans()), max_size=6
)


@given(batches=BATCHES, reads=st.lists(st.booleans(), min_size=6, max_size=6))
@hsettings(max_examples=150, deadline=None)
def test_every_subscriber_gets_each_frame_after_its_cursor_once(
    batches: list[tuple[list[int], float, bool]], reads: list[bool]
) -> None:
    """Shared writes (unfiltered subscribers) or the events themselves (filtered ones, or a
    cursor inside the batch): each subscriber's writes are the frames after its cursor, whole,
    in order, each once."""
    from ledger.http.stream import writes

    the_hub = hub.Hub(None)  # type: ignore[arg-type]  # no tail: batches published by hand
    the_hub.running, the_hub._generation = True, 1
    sequence, published = 0, []
    subscribers: list[tuple[Subscriber, int, list[bytes]]] = []
    for n, (sizes, where, filtered) in enumerate(batches):
        batch = []
        for size in sizes:
            sequence += 1
            data = {"x": "a" * size}
            batch.append(
                StreamEvent(
                    sequence, "order", frame(sequence, "order", data), frozenset({"u"}), "S", "I"
                )
            )
        published += batch
        # Anywhere in the ring, or inside the batch about to come (a stream that resumed at
        # the store's sequence, read after the tail's position).
        cursor = int(where * sequence)
        want = StreamFilter(users=frozenset({"u"})) if filtered else StreamFilter()
        subscribers.append((the_hub.join(want, cursor, None), cursor, []))
        the_hub._publish(batch, sequence, 1)
        for subscriber, _, written in subscribers:
            if reads[n]:
                written.extend(writes(subscriber.take()))
    for subscriber, cursor, out in subscribers:
        out.extend(writes(subscriber.take()))
        assert b"".join(out) == b"".join(e.frame for e in published if e.sequence > cursor)
        ends = {len(b"".join(out[: k + 1])) for k in range(len(out))}
        bounds = set()
        total = 0
        for event in published:
            if event.sequence > cursor:
                total += len(event.frame)
                bounds.add(total)
        assert ends <= bounds  # every write ends where a frame does


@pytest.mark.parametrize(
    "want",
    [
        StreamFilter(users=frozenset({"Zed"})),
        StreamFilter(strategies=frozenset({"S_B"})),
        StreamFilter(instruments=frozenset({"INFY"})),
        StreamFilter(kinds=frozenset({"profile"})),
    ],
)
def test_an_event_a_filter_refuses_is_never_framed(
    want: StreamFilter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Framing is most of an event's cost: a resume far back with a narrow filter read ~10,000
    # stored events a second when every one was framed, ~20,000 since.
    feed = Feed(lambda: [("Ann", "S_A")])
    placed = Order.place("o-1", "S_A", "ACC", "BUY", AT, ["Ann"], [], None).collect_events()[0]
    closed = CLOSED(
        originator_id=Book.create_id("Ann", "S_A"), originator_version=2,
        timestamp=CLOSED.create_timestamp(), instrument="ACC", order_id="s", buy_order_id="b",
        at=AT, quantity="1", price=None, entry_price=None,
    )  # fmt: skip
    monkeypatch.setattr(feed_module, "frame", lambda *_: pytest.fail("framed"))
    assert feed.translate(placed, 5, want) is None
    assert feed.translate(closed, 6, want) is None
    monkeypatch.undo()
    assert feed.translate(placed, 5) is not None  # unfiltered: framed once for everyone
