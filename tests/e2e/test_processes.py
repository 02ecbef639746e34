"""`ledger serve` as processes: any one killed under load, the rest answer 503, nothing is lost."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import httpx
import psutil
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ledger.wire import partition
from tests.support import Server, check_read_models, get_all, run_load


def _kill(server: Server, role: str) -> Callable[[], None]:
    def act() -> None:
        victim = server.child(role)
        victim.kill()
        psutil.wait_procs([victim], timeout=30)

    return act


@pytest.mark.parametrize("role", ["writer", "worker", "project"])
def test_a_killed_process_comes_back_and_every_200_is_stored(
    role: str, embedded_server: Server
) -> None:
    server = embedded_server
    acked = run_load([server.url], 4, 60, 7, _kill(server, role))
    # Load again while (and after) the supervisor starts it again: 503s, then 200s.
    acked.update(run_load([server.url], 4, 60, 8, lambda: None))
    check_read_models(server, acked)  # every acknowledged order stored, read models = fold
    name = "projector" if role == "project" else role
    assert re.search(rf"{name}( \d+)? exited with -9; starting it again", server.log.read_text())
    assert server.stop() == 0


def _drop_connections(server: Server) -> Callable[[], None]:
    def act() -> None:
        with psycopg.connect(server.admin_dsn(), autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name LIKE 'ledger %'"
            ).fetchone()
        assert row is not None
        assert row[0] >= 3  # the writer's, the worker's and the projector's at least

    return act


def test_dropped_database_connections_lose_no_200(embedded_server: Server) -> None:
    server = embedded_server
    # Every process's connections are cut mid-load, twice: a commit in flight may or may not
    # have happened (its client gets 503 and may send again), no process may die or answer 500.
    acked = run_load([server.url], 4, 60, 11, _drop_connections(server))
    acked.update(run_load([server.url], 4, 60, 12, _drop_connections(server)))
    acked.update(run_load([server.url], 4, 60, 13, lambda: None))  # and then served again
    check_read_models(server, acked)  # every acknowledged order stored, read models = fold
    log = server.log.read_text()
    assert "terminating connection due to administrator command" in log
    assert "exited with" not in log  # recovered in place, not by a restart
    assert server.stop() == 0


def test_two_writers_split_the_strategies(make_server: Callable[[str], Server]) -> None:
    server = make_server("embedded")
    server.stop()
    server.args += ["--writers", "2", "--workers", "2"]
    server.start()
    writers = (
        [p for p in psutil.Process(server.proc.pid).children() if "writer" in p.cmdline()[3:4]]
        if server.proc
        else []
    )
    assert len(writers) == 2
    acked = run_load([server.url], 6, 200, 9, lambda: None)
    check_read_models(server, acked)  # no double booking across the two writers
    # Counted in two writer processes, summed by every worker's /metrics.
    metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    stored = sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "ledger_orders_total" and sample.labels["outcome"] != "UNAVAILABLE"
    )
    assert stored >= len(acked)
    _each_dropped_strategy_has_its_writer_s_sequence(server)
    assert server.stop() == 0


def _each_dropped_strategy_has_its_writer_s_sequence(server: Server) -> None:
    """DELETE /users/{user} across both writers, orders flowing to both: each dropped
    strategy's sequence parts its orders into those decided with the user and without."""
    a, d = "STRATEGY_A", "STRATEGY_D"
    assert partition(a, 2) != partition(d, 2)
    for strategy in (a, d):  # an instrument nobody orders: refused, never open, until dropped
        put = httpx.put(
            f"{server.url}/users/Zed/strategies/{strategy}", json={"instruments": ["ZZZ"]}
        )
        assert put.status_code == 200, put.text
    sent = {a: 0, d: 0}
    more = threading.Condition()
    stop = threading.Event()

    def orders(strategy: str) -> None:
        while not stop.is_set():
            n = sent[strategy] + 1
            body = {"STRATEGY": strategy, "INSTRUMENT": "ACC", "POSITION": "BUY"}
            assert server.post({**body, "ORDER_ID": f"zed-{strategy}-{n}"}).status_code == 200
            with more:
                sent[strategy] = n
                more.notify_all()

    def each_sent(at_least: dict[str, int]) -> bool:
        with more:
            return more.wait_for(lambda: all(sent[s] >= at_least[s] for s in sent), timeout=30)

    threads = [threading.Thread(target=orders, args=(s,)) for s in (a, d)]
    for thread in threads:
        thread.start()
    try:
        assert each_sent({a: 10, d: 10})
        answer = httpx.delete(f"{server.url}/users/Zed", timeout=30)
        with more:
            after = {s: n + 10 for s, n in sent.items()}
        assert each_sent(after)  # and after it, on both
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert answer.status_code == 200, answer.text
    dropped = {c["strategy"]: c["sequence"] for c in answer.json()["dropped"]}
    assert set(dropped) == {a, d}
    assert answer.json()["sequence"] == max(dropped.values())
    top = httpx.get(f"{server.url}/health", timeout=30).json()["sequence"]
    for order in get_all(server, "/orders", "orders", top):
        if order["order_id"].startswith("zed-"):
            decided = {r["user"] for r in order["rejected_for"]} | set(order["accepted_for"])
            assert ("Zed" in decided) is (order["sequence"] < dropped[order["strategy"]])


def test_an_idle_server_holds_few_database_connections(embedded_server: Server) -> None:
    server = embedded_server
    assert server.post({"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY"})
    everyone = {"ledger writer", "ledger worker", "ledger projector"}
    deadline = time.monotonic() + 30  # the projector starts last, after the server serves
    with psycopg.connect(server.admin_dsn(), autocommit=True) as conn:
        while True:
            names = {
                name
                for (name,) in conn.execute(
                    "SELECT application_name FROM pg_stat_activity"
                    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
                )
            }
            if names >= everyone or time.monotonic() > deadline:
                break
            time.sleep(0.05)  # polling another process's start-up
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        ).fetchone()
    assert row is not None
    # One writer, one worker, the projector and this test: was 11-21 for one server alone.
    assert row[0] <= 12, f"{row[0]} connections"
    # Each process names its connections, for pg_stat_activity and the benchmark.
    assert names == everyone
