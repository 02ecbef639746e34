"""The stream's past, read from the store by the hub, against a model built from the answers."""

from __future__ import annotations

import asyncio
import contextlib
import re
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.amounts import canonical
from ledger.answers import OrderRequest
from ledger.application import Ledger
from ledger.domain import Position
from ledger.http import stream as stream_module
from ledger.http.stream import events
from projections import hub as hub_module
from projections.feed import KINDS, StreamEvent, StreamFilter
from projections.hub import HISTORY_PAGE, Hub
from tests.support import EXAMPLE_PROFILES

USERS = sorted(EXAMPLE_PROFILES)
STRATEGIES = ["STRATEGY_A", "STRATEGY_B", "STRATEGY_D", "STRATEGY_X"]
INSTRUMENTS = ["GRASIM", "INFY", "MINDA", "ACC", "NTPC"]

requests = st.builds(
    lambda s, i, p, q, price: OrderRequest(
        s, i, Position(p), quantity=q, price=None if price is None else Decimal(price)
    ),
    st.sampled_from(STRATEGIES),
    st.sampled_from(INSTRUMENTS),
    st.sampled_from(["BUY", "SELL"]),
    st.sampled_from([1, 4]),
    st.none() | st.sampled_from(["10", "12.5", "0.01"]),
)


def subset(items: list[str]) -> st.SearchStrategy[frozenset[str] | None]:
    return st.none() | st.frozensets(st.sampled_from(items), min_size=1)


filters = st.builds(
    StreamFilter,
    subset(USERS),
    subset(STRATEGIES),
    subset(INSTRUMENTS),
    subset(list(KINDS)),
)

# The model: (kind, data without times) of every stream event, in store order.
Seen = tuple[str, dict[str, Any], frozenset[str], str, str | None]


def profile_events() -> list[Seen]:
    return [
        (
            "profile",
            {"user": u, "strategy": s, "change": "taken_up", "instruments": i, "multiplier": "1"},
            frozenset([u]),
            s,
            None,
        )
        for u, books in EXAMPLE_PROFILES.items()
        for s, i in books.items()
    ]


def numbers(answer: Any, user: str, held: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    """A position event's numbers: what the BUY booked (no multipliers here), or the close."""
    key = (user, answer.strategy, answer.instrument)
    if answer.position is Position.BUY:
        held[key] = (str(answer.quantity), answer.price)
        return {"quantity": str(answer.quantity), "price": answer.price, "entry_price": None,
                "realised_pnl": None}  # fmt: skip
    quantity, entry = held.pop(key)
    known = entry is not None and answer.price is not None
    gain = (Decimal(answer.price) - Decimal(entry)) * Decimal(quantity) if known else None
    return {"quantity": quantity, "price": answer.price, "entry_price": entry,
            "realised_pnl": None if gain is None else canonical(gain)}  # fmt: skip


def order_events(answer: Any, held: dict[tuple[str, ...], Any]) -> list[Seen]:
    data = orjson.loads(orjson.dumps(answer))
    action = "opened" if answer.position is Position.BUY else "closed"
    users = frozenset([*answer.accepted_for, *(r["user"] for r in answer.rejected_for)])
    positions: list[Seen] = [
        (
            "position",
            {"user": u, "strategy": answer.strategy, "instrument": answer.instrument,
             "order_id": answer.order_id, "action": action, **numbers(answer, u, held)},
            frozenset([u]),
            answer.strategy,
            answer.instrument,
        )
        for u in answer.accepted_for
    ]  # fmt: skip
    return [*positions, ("order", data, users, answer.strategy, answer.instrument)]


def matches(want: StreamFilter, seen: Seen) -> bool:
    kind, _, users, strategy, instrument = seen
    return StreamFilter.matches(
        want,
        StreamEvent(0, kind, b"", users, strategy, instrument),  # type: ignore[arg-type]
    )


def seen(kind: str, data: dict[str, Any]) -> Seen:
    """What a filter looks at, from an event's data."""
    if kind == "order":
        users = frozenset([*data["accepted_for"], *(r["user"] for r in data["rejected_for"])])
        return (kind, data, users, data["strategy"], data["instrument"])
    return (kind, data, frozenset([data["user"]]), data["strategy"], data.get("instrument"))


def read(hub: Hub, after: int, want: StreamFilter, top: int) -> list[tuple[int, str, Any]]:
    found: list[tuple[int, str, Any]] = []
    cursor = after
    while cursor < top:
        page, cursor = hub.history(cursor, want, top)
        for event in page:
            text = event.frame.decode()
            data = orjson.loads(text.split("data: ", 1)[1].split("\r\n", 1)[0])
            found.append((event.sequence, event.kind, data))
    return found


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    batches=st.lists(st.lists(requests, min_size=1, max_size=8), max_size=3),
    want=filters,
    data=st.data(),
)
def test_history_is_every_matching_event_after_the_cursor_once_in_order(
    ledger: Ledger, batches: list[list[OrderRequest]], want: StreamFilter, data: st.DataObject
) -> None:
    model = getattr(ledger, "_stream_model", None)
    if model is None:  # the first example: the profile import's events
        model = ledger._stream_model = profile_events()  # type: ignore[attr-defined]
    sequences: list[int] = getattr(ledger, "_order_sequences", [])
    held = getattr(ledger, "_held", {})  # open positions' numbers, across examples
    ledger._held = held  # type: ignore[attr-defined]
    for batch in batches:
        for outcome in ledger.place_orders(batch):
            if outcome.stored:
                assert outcome.answer.sequence is not None
                model.extend(order_events(outcome.answer, held))
                sequences.append(outcome.answer.sequence)
    ledger._order_sequences = sequences  # type: ignore[attr-defined]
    hub = Hub(ledger)
    top = ledger.last_sequence()
    everything = read(hub, 0, StreamFilter(), top)
    assert [s for s, _, _ in everything] == sorted({s for s, _, _ in everything})
    assert [s for s, k, _ in everything if k == "order"] == sequences

    # Orders in the order they were answered; a batch stores its book events before its
    # orders, so positions are compared per book, and each comes before its order.
    def key(kind: str, data: dict[str, Any]) -> Any:
        return data if kind == "order" else (data["user"], data["strategy"], data["instrument"])

    def strip(data: dict[str, Any]) -> dict[str, Any]:
        return {f: v for f, v in data.items() if f not in ("at", "received_at")}

    got = [(k, strip(d)) for _, k, d in everything]
    wanted = [(k, d) for k, d, *_ in model]
    for kind in KINDS:
        mine = [d for k, d in got if k == kind]
        theirs = [d for k, d in wanted if k == kind]
        if kind == "position":
            mine.sort(key=lambda d: key(kind, d))  # stable: per book, in store order
            theirs.sort(key=lambda d: key(kind, d))
        assert mine == theirs
    placed_at = {d["order_id"]: s for s, k, d in everything if k == "order"}
    assert all(s < placed_at[d["order_id"]] for s, k, d in everything if k == "position")
    # From any cursor, with any filter: the model's events after it that match.
    # An index into this example's cursors: drawn the same way whatever the store holds.
    cursors = [0, *(s for s, _, _ in everything)]
    after = cursors[data.draw(st.integers(0, 10**6)) % len(cursors)]
    expected = [(s, k) for s, k, d in everything if s > after and matches(want, seen(k, d))]
    # A hub of its own: one that read everything already knows every book's owner, which a
    # filter on kinds without profiles finds without the StrategyTakenUp events.
    assert [(s, k) for s, k, _ in read(Hub(ledger), after, want, top)] == expected


def test_history_pages_are_bounded(ledger: Ledger) -> None:
    for n in range(HISTORY_PAGE):
        side = "BUY" if n % 2 == 0 else "SELL"
        ledger.place_orders([OrderRequest("STRATEGY_B", "ACC", Position(side), f"p-{n}")])
    hub = Hub(ledger)
    top = ledger.last_sequence()
    page, cursor = hub.history(0, StreamFilter(), top)
    assert len(page) <= HISTORY_PAGE
    assert 0 < cursor < top
    rest, end = hub.history(cursor, StreamFilter(), top)
    assert end == top or len(rest) <= HISTORY_PAGE


def fill(ledger: Ledger, orders: int) -> None:
    """Orders opening and closing one position, each decided for every follower."""
    for n in range(orders):
        side = "BUY" if n % 2 == 0 else "SELL"
        ledger.place_orders([OrderRequest("STRATEGY_B", "ACC", Position(side))])


def test_history_pages_stop_at_their_byte_budget(ledger: Ledger) -> None:
    fill(ledger, 40)
    hub = Hub(ledger)
    top = ledger.last_sequence()
    whole = [s for s, _, _ in read(hub, 0, StreamFilter(), top)]
    paged: list[int] = []
    cursor = 0
    while cursor < top:
        page, cursor = hub.history(cursor, StreamFilter(), top, budget=1)
        assert len(page) <= 1  # one event passes any budget; a second would pass this one
        paged += [event.sequence for event in page]
    assert paged == whole
    # Read `limit` stored events at a time: the next page starts after the last one read.
    page, cursor = hub.history(0, StreamFilter(), top, limit=2)
    assert [event.sequence for event in page] == whole[:2]
    assert cursor == whole[1]


def ids(frames: bytes) -> list[int]:
    return [int(n) for n in re.findall(rb"^id: (\d+)", frames, re.MULTILINE)]


async def until(stream: Any, last: int) -> list[int]:
    """The ids a stream sends, up to `last`."""
    got: list[int] = []
    async for item in stream:
        if isinstance(item, bytes):
            got += ids(item)
        if got and got[-1] >= last:
            break
    return got


def test_a_subscriber_far_behind_catches_up_at_its_pace_then_goes_live(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        hub = Hub(ledger)
        await asyncio.to_thread(fill, ledger, 20)  # before the tail: read from the store
        await hub.start()
        start = hub.position
        watcher = hub.join(StreamFilter(), start, None)  # to know when the ring has it all
        await asyncio.to_thread(fill, ledger, 40)
        top = ledger.last_sequence()
        while watcher.cursor < top:
            await watcher.ready.wait()
            watcher.take()
        hub.leave(watcher)
        behind = [event.sequence for event in hub.recent(StreamFilter(), start, 10**9)[0]]
        # More behind than a live subscriber may queue: it used to be cut before any was sent.
        monkeypatch.setattr(hub_module, "QUEUE_BYTES", 4096)
        monkeypatch.setattr(hub_module, "CATCH_UP_BYTES", 1024)
        assert sum(len(e.frame) for e in hub.recent(StreamFilter(), start, 10**9)[0]) > 4096
        stream = events(hub, StreamFilter(), start, None)
        assert await until(stream, top) == behind
        await stream.aclose()

        # From before the tail: the store a page at a time (each read as long as the last
        # page that filled up, up to HISTORY_PAGE), the ring, then live.
        whole = [s for s, _, _ in read(hub, 0, StreamFilter(), top)]
        limits: list[int] = []
        history = hub.history

        def spied(*args: Any, **kwargs: Any) -> Any:
            limits.extend([kwargs["limit"]] if "limit" in kwargs else [])
            return history(*args, **kwargs)

        monkeypatch.setattr(hub, "history", spied)
        stream = events(hub, StreamFilter(), 0, None)
        assert await until(stream, top) == whole
        assert min(limits) < HISTORY_PAGE and max(limits) == HISTORY_PAGE
        await asyncio.to_thread(fill, ledger, 1)
        newer = [s for s, _, _ in read(hub, top, StreamFilter(), ledger.last_sequence())]
        assert await until(stream, newer[-1]) == newer
        await stream.aclose()

        # One that stops reading while it catches up is cut off after STALL seconds.
        monkeypatch.setattr(stream_module, "STALL", 0.05)
        aborted = asyncio.Event()
        stalled = events(hub, StreamFilter(), start, aborted.set)
        await anext(stalled)  # the retry hint
        assert ids(await anext(stalled))  # a first page, then nothing more is read
        await asyncio.wait_for(aborted.wait(), timeout=10)
        # What clients catching up hold is counted until it goes (or they do).
        assert hub.held > 0
        await stalled.aclose()
        assert hub.held == 0

        # Gone before joining live: the tail stops when nobody else listens.
        monkeypatch.setattr(hub_module, "IDLE_STOP", 0)
        early = events(hub, StreamFilter(), 0, None)
        await anext(early)
        await anext(early)
        await early.aclose()
        for _ in range(3):  # turns of the loop: the idle timer is due at once
            await asyncio.sleep(0)
        assert not hub.running
        hub.close()

    asyncio.run(scenario())


def test_catch_up_pages_take_turns_past_their_budget(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        hub = Hub(ledger)
        monkeypatch.setattr(hub_module, "CATCH_UP_HELD", 1)  # one page at a time
        first = await hub.reserve()
        second = asyncio.create_task(hub.reserve())
        await asyncio.sleep(0)  # a turn of the loop: it would have its page by now
        assert not second.done()

        async def give_back_and_ask_again() -> int:
            hub.release(first)
            return await hub.reserve()  # with no turn of the loop between: behind the second

        again = asyncio.create_task(give_back_and_ask_again())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert second.done() and not again.done()
        hub.release(await second)
        hub.release(await again)
        assert hub.held == 0
        # A client that leaves while it waits gives up its turn, and nothing else.
        first = await hub.reserve()
        gone = asyncio.create_task(hub.reserve())
        await asyncio.sleep(0)
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
        hub.release(first)
        assert hub.held == 0
        hub.release(await hub.reserve())  # at once: no turn left behind
        assert hub.held == 0
        # Many leave together: a page given back between a waiter's cancellation and its
        # handler passes over the cancelled turns (it gave them bytes and raised before).
        first = await hub.reserve()
        waiting = [asyncio.create_task(hub.reserve()) for _ in range(3)]
        await asyncio.sleep(0)
        for task in waiting[:2]:
            task.cancel()  # their futures are cancelled now, their handlers run later
        hub.release(first)  # the next turn alive is the third's
        for task in waiting[:2]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        hub.release(await waiting[2])
        assert hub.held == 0
        hub.release(await hub.reserve())
        assert hub.held == 0

    asyncio.run(scenario())
