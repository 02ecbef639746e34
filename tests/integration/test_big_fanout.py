"""Orders fanned out to thousands of users: the projection and replay keep moving, in bounds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from psycopg import sql

from ledger.answers import OrderRequest
from ledger.application import Ledger
from ledger.domain import Position
from ledger.overrides.storage import BatchingProjectionRunner
from ledger.store.database import Database
from projections.projection import LedgerProjection
from projections.replay import replay
from projections.runner import open_view
from projections.views import LedgerView
from projections.writes import Writes

USERS = 5_000
ORDERS = 100
STRATEGY = "STRATEGY_FAN"
# Reduced from the production 5 s, so that a fan-out this small still shows a transaction
# left idle while Python works: the fix must leave no gap near it.
IDLE_TIMEOUT = "1"
BUDGET = 50_000  # decisions per view transaction here: 10 orders of 5,000


@pytest.fixture
def fanout(database: Database, make_ledger: Callable[[], Ledger]) -> tuple[dict[str, str], int]:
    """A store of ORDERS orders to a USERS-user strategy; the environment and last sequence."""
    ledger = make_ledger()
    # Even users trade both instruments, odd users one: every order is booked for some users
    # and refused for the others, and BUYs and SELLs alternate so positions open and close.
    ledger.import_profiles(
        {
            f"user {n:05d}": {STRATEGY: ["AAA", "BBB"] if n % 2 == 0 else ["BBB"]}
            for n in range(USERS)
        }
    )
    cycle = [("AAA", Position.BUY), ("AAA", Position.SELL), ("BBB", Position.BUY)]
    cycle.append(("BBB", Position.SELL))
    requests = [
        OrderRequest(STRATEGY, *cycle[k % len(cycle)], order_id=f"fan-{k}") for k in range(ORDERS)
    ]
    for start in range(0, ORDERS, 20):
        ledger.place_orders(requests[start : start + 20])
    env = database.eventsourcing_env()
    env["POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT"] = IDLE_TIMEOUT
    return env, ledger.last_sequence()


@pytest.fixture
def budget(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """A smaller decision budget, and the decisions of every view transaction written."""
    monkeypatch.setattr("projections.views.DECISION_BUDGET", BUDGET)
    monkeypatch.setattr("projections.replay.DECISION_BUDGET", BUDGET)
    monkeypatch.setattr(LedgerProjection, "budget", BUDGET)
    sizes: list[int] = []
    write = LedgerView.write

    def counted(view: LedgerView, batch: Writes | None, *args: Any) -> None:
        sizes.append(0 if batch is None else batch.decisions)
        write(view, batch, *args)  # the tracking record, the roster rows of the same batch

    monkeypatch.setattr(LedgerView, "write", counted)
    yield sizes


def table_counts(view: LedgerView) -> dict[str, int]:
    """Rows in each read table."""
    return {
        name: view.query(sql.SQL("SELECT count(*) AS n FROM {0}").format(table), [])[0]["n"]
        for name, table in view.tables.items()
    }


def snapshot(view: LedgerView) -> dict[str, list[dict[str, Any]]]:
    """Every row of the three read tables, in a fixed order."""
    return {
        name: view.query(sql.SQL("SELECT * FROM {0} ORDER BY 1, 2, 3").format(table), [])
        for name, table in view.tables.items()
    }


EXPECTED = {"orders": ORDERS, "positions": 0, "trades": ORDERS // 4 * (USERS // 2 + USERS)}


def test_big_fanout_is_projected_and_replayed_in_bounded_batches(
    fanout: tuple[dict[str, str], int], database: Database, budget: list[int]
) -> None:
    env, last = fanout
    # Live: 500,000 decisions under a 1 s idle-in-transaction timeout, in bounded batches.
    with BatchingProjectionRunner(
        application_class=Ledger,
        projection_class=LedgerProjection,
        view_class=LedgerView,
        env=env,
    ) as run:
        run.wait(last, timeout=120)
    assert max(budget) <= BUDGET
    assert len(budget) >= ORDERS * USERS // BUDGET  # several transactions, not one
    # Read back with the production timeout: the 1 s one is for the writes under test.
    view = open_view(database.eventsourcing_env())
    try:
        assert view.max_tracking_id(Ledger.name) == last
        assert table_counts(view) == EXPECTED
        live = snapshot(view)
        # Replay: the same rows, each transaction in the budget, progress after each one.
        budget.clear()
        reports: list[tuple[int, float]] = []
        started = time.monotonic()
        orders, events = replay(
            env, database.url, progress=lambda at, _top: reports.append((at, time.monotonic()))
        )
        assert (orders, events) == (ORDERS, last)
        assert max(budget) <= BUDGET
        assert len(budget) >= ORDERS * USERS // BUDGET
        assert len(reports) >= len(budget)
        assert [at for at, _ in reports] == sorted(at for at, _ in reports)
        assert reports[0][0] > 0 and reports[-1][0] == last
        assert reports[0][1] - started < (reports[-1][1] - started) / 2  # moves from the start
        assert view.max_tracking_id(Ledger.name) == last
        assert snapshot(view) == live
    finally:
        view.datastore.close()
