"""End to end: the real `ledger serve` in a subprocess, killed and restarted."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from psycopg import sql

from tests.conftest import Server, free_port

MINDA_BUY = {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY"}


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory the embedded server's own user can reach."""
    base = Path(tempfile.mkdtemp(prefix="ledger-data-"))
    base.chmod(0o755)
    yield base
    postmaster = base / "pg" / "postmaster.pid"
    if postmaster.exists():  # a failed test may leave the embedded server running
        pid = int(postmaster.read_text().split()[0])
        if psutil.pid_exists(pid):
            os.kill(pid, signal.SIGQUIT)
    shutil.rmtree(base, ignore_errors=True)


BACKENDS = ["embedded"] + (["external"] if os.environ.get("DATABASE_URL") else [])


@pytest.fixture
def make_server(
    data_dir: Path, profile_file: Path, server_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[[str], Server]]:
    """Start servers on the embedded default, or on DATABASE_URL in a schema of their own."""
    made: list[Server] = []
    schemas: list[str] = []

    def make(backend: str) -> Server:
        env = dict(server_env)
        args = ["--port", str(free_port()), "--profiles", str(profile_file)]
        args += ["--data-dir", str(data_dir), "--host", "127.0.0.1"]
        if backend == "external":
            schemas.append(f"t_{uuid.uuid4().hex[:12]}")
            env["DATABASE_URL"] = os.environ["DATABASE_URL"]
            env["LEDGER_DB_SCHEMA"] = schemas[-1]
        srv = Server(args, env, tmp_path / f"server-{len(made)}.log")
        made.append(srv)
        srv.start()
        return srv

    yield make
    for srv in made:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.kill()
    for schema in schemas:
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest, make_server: Callable[[str], Server]) -> Server:
    """A running server on each backend under test."""
    return make_server(request.param)


@pytest.fixture
def embedded_server(make_server: Callable[[str], Server]) -> Server:
    """A running server on the embedded default database."""
    return make_server("embedded")


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
    server.kill()

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


def test_database_lost_answers_503_quickly(embedded_server: Server, data_dir: Path) -> None:
    server = embedded_server  # stopping the shared server would break other tests
    assert server.post(MINDA_BUY).status_code == 200
    pid = int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGQUIT)  # immediate shutdown, as if the database crashed
    psutil.Process(pid).wait(timeout=10)

    # A client that gives up after 15 s still gets its answer: the pool timeout bounds it.
    body = {**MINDA_BUY, "ORDER_ID": "while-down"}
    response = httpx.post(f"{server.url}/order", json=body, timeout=15)
    assert response.status_code == 503, response.text
    assert response.json()["error"]
    health = httpx.get(f"{server.url}/health", timeout=30)
    assert health.status_code == 503
    assert health.json()["database"] == "unreachable"
