"""The pipelined writer on real PostgreSQL: a failed commit takes nothing decided after it along."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ledger.answers import OrderRequest
from ledger.application import Ledger
from ledger.domain import Position
from ledger.store.database import Database
from ledger.wire import WriterUnavailable
from ledger.writer import Writer


def test_a_batch_decided_on_a_failed_commit_is_decided_again(
    ledger: Ledger, database: Database
) -> None:
    events = sql.Identifier(database.schema, ledger.store.events_table_name)
    locked, release = threading.Event(), threading.Event()

    def hold_the_table() -> None:
        # A real failure: the lock writers take; the writer waits out its lock_timeout.
        with psycopg.connect(database.url) as conn, conn.transaction():
            conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(events))
            locked.set()
            release.wait(timeout=60)

    async def run() -> dict[str, Any]:
        writer = Writer(ledger)
        writer.start()
        holder = threading.Thread(target=hold_the_table)
        holder.start()
        await asyncio.to_thread(locked.wait, 30)
        buy = writer.enqueue(OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "p-buy"))
        await asyncio.sleep(0.2)  # let the BUY's batch reach its commit (it waits on the lock)
        # Decided while the BUY commits: the SELL closes the position the BUY opened.
        sell = writer.enqueue(OrderRequest("STRATEGY_B", "MINDA", Position.SELL, "p-sell"))
        with pytest.raises(WriterUnavailable):
            await buy  # the lock timeout: not committed
        release.set()
        holder.join()
        results = {"sell": await sell}
        again = writer.enqueue(OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "p-buy-2"))
        results["again"] = await again
        await writer.stop()
        return results

    results = asyncio.run(run())
    # The SELL was decided again from the store, where the BUY never happened.
    sell = results["sell"].answer
    assert sell.RESPONSE == "REJECTED"
    assert {"user": "Holland Proctor", "reason": "NO_OPEN_POSITION"} in sell.rejected_for
    # No phantom position in memory either: a new BUY opens it.
    assert results["again"].answer.accepted_for == ["Holland Proctor"]
    assert ledger.get_order("p-buy") is None


def test_a_retry_while_its_order_commits_waits_for_that_commit(
    ledger: Ledger, database: Database
) -> None:
    events = sql.Identifier(database.schema, ledger.store.events_table_name)
    locked, release = threading.Event(), threading.Event()

    def hold_the_table() -> None:
        with psycopg.connect(database.url) as conn, conn.transaction():
            conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(events))
            locked.set()
            release.wait(timeout=60)

    def until(condition: Any) -> None:
        deadline = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < deadline
            time.sleep(0.01)

    def commit_waits_on_the_lock() -> bool:
        with psycopg.connect(database.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE %s",
                ("%LOCK TABLE%",),
            ).fetchone()
        return bool(row and row[0])

    book = ledger.strategy_books("STRATEGY_B")[0]

    async def run() -> tuple[Any, Any]:
        writer = Writer(ledger)
        writer.start()
        holder = threading.Thread(target=hold_the_table)
        holder.start()
        await asyncio.to_thread(locked.wait, 30)
        order = OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "r-1")
        first = writer.enqueue(order)
        await asyncio.to_thread(until, commit_waits_on_the_lock)
        retry = writer.enqueue(order)  # the client gave up waiting and sent it again
        await asyncio.to_thread(until, writer._queue.empty)  # the writer has taken it
        release.set()
        holder.join()
        answers = await first, await retry
        await writer.stop()
        return answers

    first, retry = asyncio.run(run())
    assert first.answer == retry.answer
    assert first.answer.accepted_for == ["Holland Proctor"]
    assert first.stored
    assert not retry.stored
    # Nothing conflicted: the books in memory were kept, not reloaded from the store.
    assert ledger.strategy_books("STRATEGY_B")[0] is book
    assert book.version == ledger.repository.get(book.id).version
