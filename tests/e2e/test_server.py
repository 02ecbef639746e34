"""End to end: the real `ledger serve` in a subprocess, killed and restarted."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import fasteners
import httpx
import psutil
from pgserver.postgres_server import PostgresServer

from tests.e2e.sse import Listener, orders_of
from tests.support import EXAMPLE_PROFILES, Server

MINDA_BUY = {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY"}


def test_worked_example_over_http(server: Server) -> None:
    def send(route: str, strategy: str, instrument: str, position: str) -> dict[str, object]:
        body = {"STRATEGY": strategy, "INSTRUMENT": instrument, "POSITION": position}
        response = server.post(body, route)
        assert response.status_code == 200
        answer: dict[str, object] = response.json()
        return answer

    assert send("/create_order", "STRATEGY_A", "GRASIM", "SELL")["RESPONSE"] == "REJECTED"
    second = send("/order", "STRATEGY_B", "MINDA", "BUY")
    assert second["RESPONSE"] == "ACCEPTED"
    assert second["accepted_for"] == ["Holland Proctor"]
    assert send("/create_order", "STRATEGY_D", "INFY", "BUY")["RESPONSE"] == "REJECTED"
    assert send("/order", "STRATEGY_A", "MINDA", "SELL")["RESPONSE"] == "REJECTED"
    assert send("/create_order", "STRATEGY_B", "MINDA", "SELL")["RESPONSE"] == "ACCEPTED"
    assert server.stop() == 0


def test_sigkill_after_acknowledged_orders_loses_nothing(server: Server) -> None:
    acknowledged = {}
    for n, instrument in enumerate(["MINDA", "ACC", "MINDA", "ACC"]):
        body = {**MINDA_BUY, "INSTRUMENT": instrument, "ORDER_ID": f"ack-{n}"}
        response = server.post(body)
        assert response.status_code == 200
        acknowledged[f"ack-{n}"] = (body, response.json())
    assert server.proc is not None
    server.child("project")  # started once the writers listen: /health may answer before
    children = psutil.Process(server.proc.pid).children()  # the projection process among them
    assert children
    server.kill()
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []  # the projector does not outlive a killed server

    server.start()
    for body, answer in acknowledged.values():
        again = server.post(body, "/create_order")
        assert again.status_code == 200
        assert again.json() == answer
    # The restarted ledger still holds the open positions the orders made.
    rebuy = server.post({**MINDA_BUY, "ORDER_ID": "after-restart"}).json()
    assert rebuy["RESPONSE"] == "REJECTED"
    assert rebuy["rejected_for"][0] == {"user": "Holland Proctor", "reason": "ALREADY_OPEN"}
    assert server.stop() == 0


def test_embedded_database_is_stopped_on_exit_and_reused(
    embedded_server: Server, data_dir: Path
) -> None:
    server = embedded_server
    first = server.post({**MINDA_BUY, "ORDER_ID": "kept"}).json()
    assert server.stop() == 0
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    server.start()
    assert server.post({**MINDA_BUY, "ORDER_ID": "kept"}).json() == first
    assert server.stop() == 0


def test_database_lost_answers_503_quickly_then_heals(
    embedded_server: Server, data_dir: Path
) -> None:
    server = embedded_server  # stopping the shared server would break other tests
    listener = Listener(f"{server.url}/stream?types=order").start()
    before = server.post({**MINDA_BUY, "ORDER_ID": "before-loss"})
    assert before.status_code == 200
    listener.wait_for(lambda got: "before-loss" in orders_of(got))  # the stream is live
    pid = int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])
    # Hold pgserver's start lock, so the database stays down while we look at the service.
    start_lock = fasteners.InterProcessLock(PostgresServer.lock_path)
    start_lock.acquire()
    try:
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown, as if the database crashed
        psutil.Process(pid).wait(timeout=10)
        # A client that gives up after 5 s still gets its answer: pool and lock timeouts bound it.
        body = {**MINDA_BUY, "ORDER_ID": "while-down"}
        response = httpx.post(f"{server.url}/order", json=body, timeout=5)
        assert response.status_code == 503, response.text
        assert response.json()["error"]
        health = httpx.get(f"{server.url}/health", timeout=30)
        assert health.status_code == 503
        assert health.json()["database"] == "unreachable"
        reads = httpx.get(f"{server.url}/orders", timeout=30)
        assert reads.status_code == 503  # reads fail cleanly too, never a 500
        assert httpx.get(f"{server.url}/stream", timeout=30).status_code == 503
    finally:
        start_lock.release()

    # No restart of the service: it brings its embedded database back by itself.
    deadline = time.monotonic() + 120
    while httpx.get(f"{server.url}/health", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the service did not heal"
        time.sleep(0.5)  # polling another process's recovery
    again = server.post({**MINDA_BUY, "ORDER_ID": "before-loss"})
    assert again.json() == before.json()
    assert server.post({**MINDA_BUY, "ORDER_ID": "while-down"}).status_code == 200
    # A stream opened before the loss carries on once the database is back.
    listener.wait_for(lambda got: "while-down" in orders_of(got), timeout=60)


def test_slow_body_is_cut_off_with_408(embedded_server: Server) -> None:
    server = embedded_server
    server.stop()
    server.env = {**server.env, "LEDGER_BODY_TIMEOUT": "1"}
    server.start()
    parts = urlparse(server.url)
    top = httpx.get(f"{server.url}/health", timeout=30).json()["sequence"]
    writes = [b"POST /order", b"PUT /users/Slow/strategies/STRATEGY_A", b"POST /profiles"]
    for request in writes:
        with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
            # Promise 100 bytes, send a few, then nothing: the server must not wait forever.
            sock.sendall(
                request + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"STRATEGY"'
            )
            answer = b""
            while b"not received" not in answer and (chunk := sock.recv(65536)):
                answer += chunk  # headers and body may come in separate packets
        assert answer.startswith(b"HTTP/1.1 408"), (request, answer)
        assert b"not received" in answer
    assert httpx.get(f"{server.url}/health", timeout=30).json()["sequence"] == top  # none written


def test_open_server_on_a_public_address_warns(embedded_server: Server) -> None:
    server = embedded_server
    server.stop()
    server.args[server.args.index("--host") + 1] = "0.0.0.0"
    server.start()
    assert "LEDGER_API_TOKEN is not set" in server.log.read_text()
    assert server.stop() == 0


def test_a_start_that_cannot_listen_changes_nothing(server: Server, tmp_path: Path) -> None:
    # The same store and port as a running server, with a profile file that adds a user.
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps({**EXAMPLE_PROFILES, "Intruder": {"STRATEGY_A": ["ACC"]}}))
    args = list(server.args)
    args[args.index("--profiles") + 1] = str(changed)
    started = server.command("serve", *args, timeout=120)
    assert started.returncode == 1
    assert "cannot listen on" in started.stderr
    assert "Traceback" not in started.stderr
    # The running server's store did not take the file in.
    assert httpx.get(f"{server.url}/users/Intruder", timeout=30).status_code == 404
