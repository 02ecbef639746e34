"""End to end: SIGKILL under concurrent load, restart, and replay; nothing acknowledged is lost."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS, ROOT, Server

CLIENTS = 4
KILL_AFTER = 120  # acknowledged orders before the kill
STRATEGIES = ["STRATEGY_A", "STRATEGY_B", "STRATEGY_D"]
INSTRUMENTS = ["GRASIM", "INFY", "MINDA", "ACC", "NTPC"]


def load(server: Server, seed: int, acked: dict[str, Any], enough: threading.Event) -> None:
    """Send orders until the server dies; remember every 200."""
    rng = random.Random(seed)
    with httpx.Client(timeout=10) as client:
        for n in range(100_000):
            body = {
                "STRATEGY": rng.choice(STRATEGIES),
                "INSTRUMENT": rng.choice(INSTRUMENTS),
                "POSITION": rng.choice(["BUY", "SELL"]),
                "ORDER_ID": f"c{seed}-{n}",
            }
            try:
                response = client.post(f"{server.url}/order", json=body)
            except httpx.TransportError:
                return  # the server was killed
            if response.status_code == 200:
                acked[body["ORDER_ID"]] = response.json()
                if len(acked) >= KILL_AFTER:
                    enough.set()


def get_all(server: Server, path: str, key: str, min_sequence: int) -> list[dict[str, Any]]:
    """Every item of a paginated read endpoint."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = f"{server.url}{path}?limit=1000&min_sequence={min_sequence}"
        response = httpx.get(query + (f"&after={cursor}" if cursor else ""), timeout=30)
        for _ in range(30):  # a projector that was just restarted may need a few seconds
            if response.status_code != 503:
                break
            response = httpx.get(query + (f"&after={cursor}" if cursor else ""), timeout=30)
        assert response.status_code == 200, response.text
        items.extend(response.json()[key])
        cursor = response.json()["next"]
        if cursor is None:
            return items


def check_read_models(server: Server, acked: dict[str, Any]) -> dict[str, Any]:
    """The three statements of Recovery; returns what the read side shows."""
    top = httpx.get(f"{server.url}/health", timeout=30).json()["sequence"]
    orders = get_all(server, "/orders", "orders", top)
    by_id = {o["order_id"]: o for o in orders}
    for order_id, answer in acked.items():
        logged = {k: v for k, v in by_id[order_id].items() if k != "received_at"}
        assert logged == answer
    # Positions and trades equal a fold of the order log in sequence order.
    open_: dict[tuple[str, str, str], str] = {}
    trades = []
    for order in sorted(orders, key=lambda o: o["sequence"]):
        for user in order["accepted_for"]:
            key = (user, order["strategy"], order["instrument"])
            if order["position"] == "BUY":
                assert key not in open_, f"double buy {key}"
                open_[key] = order["order_id"]
            else:
                trades.append((*key, open_.pop(key), order["order_id"]))
    positions = httpx.get(f"{server.url}/positions?min_sequence={top}", timeout=30)
    positions = positions.json()["positions"]
    assert {(p["user"], p["strategy"], p["instrument"]): p["order_id"] for p in positions} == open_
    shown = get_all(server, "/trades", "trades", top)
    assert [
        (t["user"], t["strategy"], t["instrument"], t["buy_order_id"], t["sell_order_id"])
        for t in shown
    ] == trades
    return {"orders": orders, "positions": positions, "trades": shown}


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_under_load_then_restart_and_replay(
    backend: str, make_server: Callable[[str], Server]
) -> None:
    server = make_server(backend)
    acked: dict[str, Any] = {}
    enough = threading.Event()
    clients = [
        threading.Thread(target=load, args=(server, seed, acked, enough)) for seed in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    assert enough.wait(timeout=120), f"only {len(acked)} orders acknowledged"
    server.kill()  # mid-flight: some orders are committed but never answered
    for client in clients:
        client.join()
    assert len(acked) >= KILL_AFTER

    server.start()
    live = check_read_models(server, acked)
    assert server.stop() == 0

    replayed = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "replay", "--quiet", *server.store_args()],
        env=server.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert "events/s" in replayed.stdout

    server.start()
    assert check_read_models(server, acked) == live
    assert server.stop() == 0
