"""/health tells the truth: failing writes are an outage, even while reads work."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import psycopg
from starlette.testclient import TestClient

from ledger.http import ops
from ledger.http.app import create_app
from ledger.settings import Settings
from ledger.store.recorder import writers_key

MINDA_BUY = {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY"}


def test_health_is_503_while_commits_fail(settings: Settings, profile_file: Path) -> None:
    # The order waits for its commit's own failure (lock_timeout 5 s), not the answer timeout.
    app = create_app(settings.replace(profiles=profile_file, answer_timeout=20))
    with TestClient(app) as client:
        check(client, settings)


def check(client: TestClient, settings: Settings) -> None:
    """Commits fail while reads work: orders and /health are 503, then both recover."""
    assert client.get("/health").json()["status"] == "ok"
    key = writers_key(settings.db_schema, "ledger_events")
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        # The lock writers take: the writer's commit waits out its lock_timeout and fails,
        # as it would on a full disk, while reads still work.
        assert settings.database_url is not None
        with psycopg.connect(settings.database_url) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
            locked.set()
            release.wait(timeout=60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(timeout=30)
        refused = client.post("/order", json={**MINDA_BUY, "ORDER_ID": "h1"})
        assert refused.status_code == 503
        assert "database unavailable" in refused.json()["error"]
        assert refused.headers["Retry-After"] == "1"
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["database"] == "writes failing"
    finally:
        release.set()
        holder.join()
    assert client.post("/order", json={**MINDA_BUY, "ORDER_ID": "h1"}).status_code == 200
    assert client.get("/health").json()["status"] == "ok"


def test_health_reads_a_check_that_ended_while_its_loop_was_late(
    settings: Settings, profile_file: Path, monkeypatch: Any
) -> None:
    """A check that ends in time is the answer, even when this process's loop reads it late
    (a loop busy with thousands of streams said "unreachable" with an empty detail)."""
    app = create_app(settings.replace(profiles=profile_file))
    with TestClient(app) as client:
        real = ops.database_check
        ended = threading.Event()

        def checked_then_late(running: Any) -> tuple[int, int]:
            found = real(running)
            ended.set()
            return found

        def late_wait(awaitable: Any, timeout: float) -> Any:
            async def late() -> Any:
                task = asyncio.ensure_future(awaitable)
                await asyncio.to_thread(ended.wait, 30)  # the check has ended in its thread
                await asyncio.sleep(0)  # and its result reached the loop
                task.cancel()
                raise TimeoutError

            return late()

        monkeypatch.setattr(ops, "database_check", checked_then_late)
        monkeypatch.setattr(ops.asyncio, "wait_for", late_wait)
        health = client.get("/health")
        assert health.status_code == 200, health.text
        assert health.json()["database"] == "ok"
        # A check that does not end: 503 that says so.
        stuck = threading.Event()
        monkeypatch.setattr(ops, "database_check", lambda running: stuck.wait(30) and (0, 0))
        ended.set()
        health = client.get("/health")
        stuck.set()
        assert health.status_code == 503
        assert "did not end within" in health.json()["detail"]
