"""Deciding the next batch while one commits never leaks uncommitted state into the store."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError

from ledger import application, snapshots
from ledger.answers import OrderRequest
from ledger.application import Ledger
from ledger.domain import Book, Position
from ledger.wire import WriterUnavailable
from ledger.writer import Writer

BOOK = Book.create_id("Holland Proctor", "STRATEGY_B")


def order(position: Position, order_id: str, instrument: str = "MINDA") -> OrderRequest:
    return OrderRequest("STRATEGY_B", instrument, position, order_id)


def test_a_snapshot_holds_its_batch_not_the_next(ledger: Ledger, make_ledger: Any) -> None:
    interval = Ledger.snapshotting_intervals[Book]
    at = next(v for v in range(interval, 2 * interval) if snapshots.due(BOOK, v, interval))
    n = 0
    while ledger.book(BOOK).version < at - 1 or "MINDA" in ledger.book(BOOK).open:
        n += 1
        side = Position.SELL if "MINDA" in ledger.book(BOOK).open else Position.BUY
        ledger.commit(ledger.prepare([order(side, f"o{n}")]))
    while ledger.book(BOOK).version < at - 1:  # park the book one event before its snapshot
        n += 1
        ledger.commit(ledger.prepare([order(Position.BUY, f"o{n}", "ACC")]))
        n += 1
        ledger.commit(ledger.prepare([order(Position.SELL, f"o{n}", "ACC")]))
    assert ledger.book(BOOK).version in (at - 1, at)
    first = ledger.prepare([order(Position.BUY, "snap-buy")])  # a snapshot is due now or soon
    second = ledger.prepare([order(Position.SELL, "snap-sell")])  # decided while first commits
    ledger.commit(first)
    ledger.commit(second)
    assert ledger.snapshots is not None
    stored = list(ledger.snapshots.get(BOOK, desc=True, limit=1))
    assert [s.originator_version for s in stored] == [at]  # stored, and used below
    reloaded = make_ledger().book(BOOK)  # from the snapshot and the events after it
    assert reloaded.version == ledger.book(BOOK).version
    assert reloaded.open == ledger.book(BOOK).open == {}


def test_a_failed_retry_after_a_conflict_leaves_no_phantom_position(
    ledger: Ledger, make_ledger: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_batch = application.overrides.store_batch
    seen: list[str] = []

    def store(app: Any, batch: Any) -> list[int]:
        if seen and seen[-1] == "conflict":
            seen.append("failure")
            # A database failure injected on the retry (the store itself is real).
            raise OperationalError("connection lost")
        try:
            if not seen:
                seen.append("slow")
                stored = store_batch(app, batch)
                # Another process closes x's position: the batch decided next is stale.
                make_ledger().place_orders([order(Position.SELL, "w")])
                time.sleep(0.2)  # the first commit takes a while: the next batch is decided
                return stored
            return store_batch(app, batch)
        except IntegrityError:
            seen.append("conflict")
            raise

    monkeypatch.setattr(application.overrides, "store_batch", store)

    async def run() -> Any:
        writer = Writer(ledger)
        writer.start()
        first = writer.enqueue(order(Position.BUY, "x"))
        await asyncio.sleep(0.05)  # x's batch is committing (slowly)
        # Decided before x is stored, on the book as this process holds it: a conflict, and
        # the retry of that batch fails.
        acc = writer.enqueue(order(Position.BUY, "y", "ACC"))
        await first
        with pytest.raises(WriterUnavailable):  # answered 503
            await acc
        sell = await writer.enqueue(order(Position.SELL, "z", "ACC"))
        await writer.stop()
        return sell

    sell = asyncio.run(run())
    assert seen[:3] == ["slow", "conflict", "failure"]
    # y never committed: the SELL finds no open position, in memory as in the store.
    assert sell.answer.RESPONSE == "REJECTED"
    reloaded = make_ledger().book(BOOK)
    assert reloaded.version == ledger.book(BOOK).version
    assert reloaded.open == ledger.book(BOOK).open
