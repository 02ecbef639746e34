"""/health tells the truth: failing writes are an outage, even while reads work."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
from starlette.testclient import TestClient

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
