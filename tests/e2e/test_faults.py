"""Faults end to end: SIGTERM under load, two servers on one database, seeded kills."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest

from tests.support import BACKENDS, Server, check_read_models, free_port, run_load

CYCLES = int(os.environ.get("FAULT_CYCLES", "6"))


def test_sigterm_answers_in_flight_orders_and_exits_0(
    make_server: Callable[[str], Server],
) -> None:
    server = make_server("embedded")
    assert server.proc is not None
    server.child("project")  # started once the writers listen: /health may answer before
    projector = psutil.Process(server.proc.pid).children()
    codes: list[int] = []
    acked = run_load([server.url], 6, 60, 1, lambda: codes.append(server.stop()))
    assert codes == [0]
    _, alive = psutil.wait_procs(projector, timeout=30)
    assert alive == []  # the projection process stopped with the server
    server.start()
    check_read_models(server, acked)  # every 200 is in the log, read models = fold
    assert server.stop() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_servers_on_one_database(backend: str, make_server: Callable[[str], Server]) -> None:
    first = make_server(backend)
    # The second process shares the first one's database: the same DATABASE_URL and schema,
    # or the same embedded PostgreSQL (same data directory).
    args = list(first.args)
    args[args.index("--port") + 1] = str(free_port())
    second = Server(args, first.env, first.log.with_name("second.log"))
    second.start()
    try:
        acked = run_load([first.url, second.url], 6, 150, 2, lambda: None)
        for server in (first, second):
            check_read_models(server, acked)  # no double buy, nothing lost, same answers
    finally:
        second.stop()
    assert first.stop() == 0


def test_seeded_fault_injection(make_server: Callable[[str], Server]) -> None:
    seed = int(os.environ.get("FAULT_SEED", random.randrange(1_000_000)))
    print(f"fault injection seed: {seed} (FAULT_SEED={seed} replays it)")
    rng = random.Random(seed)
    server = make_server("embedded")
    acked: dict[str, Any] = {}
    for cycle in range(CYCLES):
        point = rng.choice(["before_commit", "after_commit", "projection_batch"])
        nth = 1 if point == "projection_batch" else rng.randint(1, 5)  # projector: first batch
        server.stop()
        server.env = {**server.env, "LEDGER_FAULTS": f"{point}={nth}"}
        server.start()

        def wait_for_fault(point: str = point) -> None:
            if point == "projection_batch":
                return  # the projector dies at its first batch; it is started again
            deadline = time.monotonic() + 60
            while f"SIGKILL at {point}" not in server.log.read_text():
                assert time.monotonic() < deadline, f"{point} never fired"
                time.sleep(0.1)  # polling another process's log

        acked.update(run_load([server.url], 4, 40, seed + cycle, wait_for_fault))
        # The killed writer is started again by the supervisor: more orders go through.
        acked.update(run_load([server.url], 4, 20, seed + cycle + 1000, lambda: None))
        check_read_models(server, acked)
        assert f"SIGKILL at {point}" in server.log.read_text()  # the fault did fire
        print(f"cycle {cycle}: {point}={nth}: {len(acked)} acknowledged, all accounted for")
    server.env = {k: v for k, v in server.env.items() if k != "LEDGER_FAULTS"}
    assert server.stop() == 0
