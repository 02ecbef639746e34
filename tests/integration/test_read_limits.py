"""Reads under load: pages bounded in bytes and memory, abandoned reads stop, health stays true."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg.sql import SQL
from starlette.testclient import TestClient

from ledger.answers import OrderRequest
from ledger.application import Ledger
from ledger.domain import Position
from ledger.http import lanes, reads
from ledger.http.app import create_app
from ledger.settings import Settings
from ledger.store.database import Database
from projections import queries
from projections.views import Cancellation, ReadCancelled

USERS = 2000  # half trade X, half Y: every order is decided for 2,000 users
ORDERS = 50
BUDGET = 4 * 2**20  # the bytes a page of orders may hold (queries.PAGE_BYTES)
WIDE = {
    f"trader-{n:04d}": {"WIDE": ["X" if n % 2 else "Y"], "STRATEGY_B": ["MINDA"]}
    for n in range(USERS)
}


@pytest.fixture
def wide(settings: Settings, database: Database, tmp_path: Path) -> Iterator[TestClient]:
    """The app on a store of ORDERS orders, each fanned out to USERS users, projected."""
    profiles = tmp_path / "wide.json"
    profiles.write_text(json.dumps(WIDE))
    with Ledger(env=database.eventsourcing_env()) as ledger:
        ledger.import_profiles(WIDE)
        for first in range(0, ORDERS, 10):
            # X: booked for half, refused for half; Z: refused for everyone (the biggest rows).
            ledger.place_orders(
                [
                    OrderRequest("WIDE", "X" if n % 2 else "Z", Position.BUY, f"wide-{n}")
                    for n in range(first, first + 10)
                ]
            )
    with TestClient(create_app(settings.replace(profiles=profiles))) as client:
        top = client.get("/health").json()["sequence"]
        assert client.get(f"/orders/wide-{ORDERS - 1}?min_sequence={top}").status_code == 200
        yield client


def test_a_page_of_big_orders_is_bounded_in_bytes_and_memory(wide: TestClient) -> None:
    everything = sum(len(wide.get(f"/orders/wide-{n}").content) for n in range(ORDERS))
    assert everything > BUDGET  # the whole log does not fit one page
    tracemalloc.start()
    try:
        response = wide.get("/orders?limit=1000")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 200
    assert len(response.content) <= BUDGET
    page = response.json()
    assert page["next"] == str(page["orders"][-1]["sequence"])  # cut short, with a cursor
    assert len(page["orders"][0]["rejected_for"]) == USERS  # orders come whole
    # The page, its copy in the test client and one fetch: about 2x. Decoding the rows into
    # Python objects and encoding them again peaked at 37 MiB here.
    assert peak < 3 * BUDGET, f"peak {peak / 2**20:.1f} MiB"
    seen = [o["order_id"] for o in page["orders"]]
    while page["next"] is not None:
        page = wide.get(f"/orders?limit=1000&after={page['next']}").json()
        seen += [o["order_id"] for o in page["orders"]]
    assert seen == [f"wide-{n}" for n in range(ORDERS)]
    assert queries.PAGE_BYTES == BUDGET


def test_one_order_over_the_budget_is_still_served(
    wide: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "PAGE_BYTES", 1000)
    page = wide.get("/orders?limit=3").json()
    assert [o["order_id"] for o in page["orders"]] == ["wide-0"]
    assert page["next"] == str(page["orders"][0]["sequence"])


def test_decisions_of_one_order_are_paged(wide: TestClient) -> None:
    whole = wide.get("/orders/wide-1").json()
    expected = [(u, "ACCEPTED", None) for u in whole["accepted_for"]] + [
        (r["user"], "REJECTED", r["reason"]) for r in whole["rejected_for"]
    ]
    seen: list[tuple[str, str, str | None]] = []
    cursor = None
    while True:
        query = "/decisions?order_id=wide-1&limit=300" + (f"&after={cursor}" if cursor else "")
        page = wide.get(query).json()
        assert (page["accepted"], page["rejected"]) == (USERS // 2, USERS // 2)
        seen += [(d["user"], d["outcome"], d["reason"]) for d in page["decisions"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == expected
    assert wide.get("/decisions?order_id=nope").status_code == 404
    assert wide.get("/decisions").status_code == 422


def test_a_cancelled_read_stops_its_statement(client: TestClient) -> None:
    view = client.app.state.services.view  # type: ignore[attr-defined]
    cancellation = Cancellation()
    threading.Timer(0.3, cancellation.cancel).start()
    started = time.monotonic()
    with pytest.raises(ReadCancelled):
        view.query(SQL("SELECT pg_sleep(30)"), [], cancellation)
    assert time.monotonic() - started < 3


class SlowFold:
    """A stand-in for a read (a fold, a page) that takes `seconds`, and stops when cancelled."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.running = 0
        self.most = 0
        self.stopped: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # A lane hands each job a cancellation: by name, or as the last argument.
        cancellation: Cancellation | None = kwargs.get("cancellation", args[-1] if args else None)
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            deadline = time.monotonic() + self.seconds
            while time.monotonic() < deadline:
                if cancellation is not None and cancellation.cancelled:
                    self.stopped.append("cancelled")
                    raise ReadCancelled
                time.sleep(0.01)
            self.stopped.append("done")
            return {"positions": [], "next": None}
        finally:
            with self._lock:
                self.running -= 1


def shed(client: TestClient, path: str, asked: int) -> list[httpx.Response]:
    """`asked` slow reads at once, /health answered meanwhile; every answer."""
    with ThreadPoolExecutor(asked) as pool:
        pending = [pool.submit(client.get, path) for _ in range(asked)]
        time.sleep(0.3)  # every read is admitted or refused by now
        for _ in range(3):
            started = time.monotonic()
            health = client.get("/health")
            assert health.status_code == 200, health.text
            assert health.json()["database"] == "ok"
            assert time.monotonic() - started < 1
        answers = [a.result() for a in pending]
    for refused in (a for a in answers if a.status_code == 503):
        assert refused.json()["error"] == "busy"
        assert refused.headers["Retry-After"] == str(lanes.RETRY_AFTER)
    assert {a.status_code for a in answers} <= {200, 503}
    return [a for a in answers if a.status_code == 200]


def test_health_stays_true_and_reads_shed_load(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = SlowFold(2.0)
    monkeypatch.setattr(queries, "positions", read)
    served = shed(client, "/positions", 24)
    assert len(served) == lanes.READ_THREADS + lanes.READ_QUEUE
    assert read.most == lanes.READ_THREADS


def test_reads_as_of_run_one_at_a_time(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    fold = SlowFold(1.0)
    monkeypatch.setattr(queries, "positions", fold)
    served = shed(client, "/positions?as_of=0", 8)
    assert len(served) == lanes.HISTORY_THREADS + lanes.HISTORY_QUEUE
    assert fold.most == lanes.HISTORY_THREADS == 1


def test_a_read_that_times_out_stops_working(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    fold = SlowFold(30.0)
    monkeypatch.setattr(queries, "positions", fold)
    monkeypatch.setattr(reads, "READ_BUDGET", 3.0)  # the read's whole budget
    response = client.get("/positions?as_of=0")
    assert response.status_code == 503
    assert response.json()["error"] == f"the read did not finish within {reads.READ_BUDGET:g} s"
    deadline = time.monotonic() + 2
    while not fold.stopped and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fold.stopped == ["cancelled"]
