"""What tests and the benchmark share: example profiles, a server process, load, checks."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from ledger.amounts import booked
from ledger.domain import Book, Position
from projections.fold import Key, Opened, PlacedOrder, fold

ROOT = Path(__file__).resolve().parent.parent

# The seed's worked example: Holland Proctor trades STRATEGY_A (GRASIM, INFY) and
# STRATEGY_B (MINDA, ACC); Kamryn Li trades STRATEGY_B (ACC) and STRATEGY_D (NTPC).
EXAMPLE_PROFILES: dict[str, dict[str, list[str]]] = {
    "Holland Proctor": {"STRATEGY_A": ["GRASIM", "INFY"], "STRATEGY_B": ["MINDA", "ACC"]},
    "Kamryn Li": {"STRATEGY_B": ["ACC"], "STRATEGY_D": ["NTPC"]},
}


TOKEN = "s3cret-token"  # LEDGER_API_TOKEN of the tests that need one

BACKENDS = ["embedded"] + (["external"] if os.environ.get("DATABASE_URL") else [])


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """The real `ledger serve` in a subprocess."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.env = env
        self.log = log
        self.port = int(args[args.index("--port") + 1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        """Start and wait until /health answers 200."""
        self.launch()
        self.wait_healthy(timeout)

    def launch(self) -> None:
        """Start the process, without waiting for it."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ledger.cli", "serve", *self.args],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self, timeout: float = 60) -> None:
        """Wait until /health answers 200 (fails if the process exits first)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)  # polling a process we do not control, not synchronising threads
        pytest.fail(f"server not healthy within {timeout}s:\n{self.log.read_text()}")

    def store_args(self) -> list[str]:
        """The options that name this server's store, for other commands."""
        at = self.args.index("--data-dir")
        return self.args[at : at + 2]

    def command(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run `ledger ARGS...` with this server's environment, to its end."""
        return subprocess.run(
            [sys.executable, "-m", "ledger.cli", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def admin_dsn(self) -> str:
        """A connection string for this server's PostgreSQL (its embedded one, or DATABASE_URL)."""
        if "DATABASE_URL" in self.env:
            return self.env["DATABASE_URL"]
        return f"host={Path(self.store_args()[1]) / 'pg'} user=postgres dbname=postgres"

    def child(self, role: str) -> psutil.Process:
        """One of the server's processes: "writer", "worker" or "project"."""
        assert self.proc is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for child in psutil.Process(self.proc.pid).children():
                with contextlib.suppress(psutil.Error):
                    if role in child.cmdline()[3:4]:
                        return child
            time.sleep(0.1)  # polling for a process the supervisor starts again
        raise AssertionError(f"no {role} process")

    def kill(self) -> None:
        """SIGKILL the server; its children (told by the kernel) stop, and are waited for."""
        assert self.proc is not None
        children = psutil.Process(self.proc.pid).children(recursive=True)
        self.proc.kill()
        self.proc.wait()
        # An HTTP worker that is still finishing its requests would answer the next start's
        # health check for a server that is not there any more.
        psutil.wait_procs(children, timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait for a clean exit."""
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout=30)

    def post(self, body: Any, route: str = "/order") -> httpx.Response:
        """POST a JSON body (or raw bytes)."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(f"{self.url}{route}", content=content, timeout=30)


STRATEGIES = ["STRATEGY_A", "STRATEGY_B", "STRATEGY_D"]
INSTRUMENTS = ["GRASIM", "INFY", "MINDA", "ACC", "NTPC"]


def send_orders(
    urls: list[str],
    seed: int,
    acked: dict[str, Any],
    enough: threading.Event,
    wanted: int,
    stop: threading.Event,
) -> None:
    """Post random orders round-robin over the servers until they die or `stop` is set."""
    rng = random.Random(seed)
    with httpx.Client(timeout=30) as client:
        for n in range(100_000):
            if stop.is_set():
                return
            body = {
                "STRATEGY": rng.choice(STRATEGIES),
                "INSTRUMENT": rng.choice(INSTRUMENTS),
                "POSITION": rng.choice(["BUY", "SELL"]),
                "ORDER_ID": f"s{seed}-{n}",
            }
            try:
                response = client.post(f"{urls[n % len(urls)]}/order", json=body)
            except httpx.TransportError:
                return  # the server is gone
            if response.status_code == 200:
                acked[body["ORDER_ID"]] = response.json()
                if len(acked) >= wanted:
                    enough.set()
            elif response.status_code != 503:
                raise AssertionError(f"{response.status_code}: {response.text}")


def run_load(
    urls: list[str], clients: int, wanted: int, seed: int, act: Callable[[], None]
) -> dict[str, Any]:
    """Load the servers; once `wanted` orders are acknowledged, call `act` (a kill, a stop)."""
    acked: dict[str, Any] = {}
    enough, stop = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def client(seed: int) -> None:
        # An exception in a thread is only printed: kept here, it fails the test below.
        try:
            send_orders(urls, seed, acked, enough, wanted, stop)
        except BaseException as failure:
            failures.append(failure)
            raise

    threads = [threading.Thread(target=client, args=(seed * 100 + c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    try:
        deadline = 120.0
        while not enough.wait(timeout=0.2) and any(t.is_alive() for t in threads):
            deadline -= 0.2
            assert deadline > 0, f"only {len(acked)} orders acknowledged"
        act()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
    return acked


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


def placed(order: dict[str, Any]) -> PlacedOrder:
    """An order of GET /orders as the fold takes it."""
    return PlacedOrder(
        order["sequence"],
        order["order_id"],
        order["strategy"],
        order["instrument"],
        order["position"],
        datetime.fromisoformat(order["received_at"]),
        order["accepted_for"],
        order["rejected_for"],
        order["reason"],
    )


def check_read_models(server: Server, acked: dict[str, Any]) -> dict[str, Any]:
    """The three statements of Recovery; returns what the read side shows."""
    top = httpx.get(f"{server.url}/health", timeout=30).json()["sequence"]
    orders = get_all(server, "/orders", "orders", top)
    by_id = {o["order_id"]: o for o in orders}
    for order_id, answer in acked.items():
        logged = {k: v for k, v in by_id[order_id].items() if k != "received_at"}
        assert logged == answer
    # Positions and trades equal the fold of the order log (which refuses a broken rule).
    open_: dict[Key, Opened] = {}
    closed = fold(sorted((placed(o) for o in orders), key=lambda o: o.sequence), open_)
    trades = [(*c.key, c.buy.order_id, c.sell.order_id) for c in closed]
    positions = get_all(server, "/positions", "positions", top)  # every page, not the first
    shown_open = {(p["user"], p["strategy"], p["instrument"]): p["order_id"] for p in positions}
    assert shown_open == {key: opened.order_id for key, opened in open_.items()}
    shown = get_all(server, "/trades", "trades", top)
    assert [
        (t["user"], t["strategy"], t["instrument"], t["buy_order_id"], t["sell_order_id"])
        for t in shown
    ] == trades
    return {"orders": orders, "positions": positions, "trades": shown}


@contextlib.contextmanager
def example_server(prefix: str) -> Iterator[Server]:
    """A server with the worked example's profiles on an embedded database of its own."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    profile = base / "profiles.json"
    profile.write_text(json.dumps(EXAMPLE_PROFILES))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "DATABASE_URL"))}
    env["LEDGER_LOG_DIR"] = str(base / "logs")
    args = ["--port", str(free_port()), "--profiles", str(profile), "--data-dir", str(base)]
    server = Server([*args, "--host", "127.0.0.1"], env, base / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def book_by_decorators(
    book: Book,
    order_id: str,
    instrument: str,
    position: Position,
    at: datetime,
    quantity: int | None = None,
    price: str | None = None,
) -> None:
    """What Book.book() does, the generic way: through the @event methods' dispatch."""
    book.check(instrument, position, quantity)
    if position is Position.BUY:
        book.open_position(
            instrument=instrument,
            order_id=order_id,
            at=at,
            quantity=booked(quantity or 1, book.multiplier),
            order_quantity=quantity or 1,
            price=price,
        )
    else:
        lot = book.sizes[instrument]
        book.close_position(
            instrument=instrument,
            order_id=order_id,
            buy_order_id=book.open[instrument],
            at=at,
            quantity=lot["quantity"],
            price=price,
            entry_price=lot["price"],
        )
