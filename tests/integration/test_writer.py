"""The pipelined writer on real PostgreSQL: a failed commit takes nothing decided after it along."""

from __future__ import annotations

import asyncio
import threading
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
