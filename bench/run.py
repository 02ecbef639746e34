"""`make bench`: every figure in one run on one machine, so the ratios hold on a noisy machine."""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from ledger.answers import OrderRequest
from ledger.application import Ledger
from ledger.domain import Position
from ledger.profiles import generate, load_raw, write
from ledger.settings import Settings
from ledger.store.database import Database
from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PY = sys.executable
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 600) -> float:
    """Seconds until GET url answers 200."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"{url} not healthy within {timeout}s")


@contextmanager
def process(args: list[str], health: str, env: dict[str, str] | None = None) -> Iterator[Any]:
    """A server process for the length of a block."""
    log = (BENCH / "server.log").open("ab")
    proc = subprocess.Popen(args, cwd=ROOT, env=env or dict(os.environ), stdout=log, stderr=log)
    try:
        proc.startup = wait_healthy(health, proc)  # type: ignore[attr-defined]
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    """Run wrk with random orders; parse its figures."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", "orders.lua", url],
        cwd=BENCH,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures: dict[str, float] = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}  # type: ignore[index]
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        figures[f"p{pct}_ms"] = float(value) * UNITS[unit]
    done = re.search(r"(\d+) requests in ([\d.]+)s", out)
    figures["requests"] = float(done[1])  # type: ignore[index]
    figures["seconds"] = float(done[2])  # type: ignore[index]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    figures["errors"] = float(bad[1]) if bad else 0.0
    figures["errors"] += sum(float(n) for n in errors.groups()) if errors else 0.0
    return figures


def stop_embedded(pgdata: Path) -> None:
    """Stop an embedded server left by an interrupted run, before its directory goes."""
    postmaster = pgdata / "postmaster.pid"
    if postmaster.exists():
        pid = int(postmaster.read_text().split()[0])
        if psutil.pid_exists(pid):
            os.kill(pid, signal.SIGQUIT)
            psutil.Process(pid).wait(timeout=30)


class Bench:
    """Holds the database and the results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: dict[str, Any] = {}
        url = os.environ.get("DATABASE_URL")
        data = BENCH / "data"
        if url is None:
            stop_embedded(data / "pg")
            shutil.rmtree(data, ignore_errors=True)
            data.mkdir(parents=True)
            data.chmod(0o755)
        self.database = Database.open(Settings(database_url=url, data_dir=data))
        users, self.strategies, self.instruments = load_raw(ROOT / "jsons" / "raw_details.json")
        self.profiles = generate(
            users, self.strategies, self.instruments, len(users), random.Random(1)
        )

    def schema(self, profiles: dict[str, Any] | None = None) -> tuple[str, Path | None]:
        """A fresh schema, with the profiles written to a file for `ledger serve`."""
        name = f"bench_{uuid.uuid4().hex[:8]}"
        if profiles is None:
            return name, None
        path = BENCH / f"{name}.json"
        write(path, profiles)
        return name, path

    def env(self, schema: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        env.update(DATABASE_URL=self.database.url, LEDGER_DB_SCHEMA=schema, **extra)
        env["LEDGER_LOG_DIR"] = str(BENCH / "log")
        return env

    def serve(self, schema: str, profile: Path | None, **extra: str) -> Any:
        port = free_port()
        args = [PY, "-m", "ledger.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        if profile is not None:
            args += ["--profiles", str(profile)]
        return port, process(args, f"http://127.0.0.1:{port}/health", self.env(schema, **extra))

    def run_http(self) -> None:
        seconds, conns = self.args.seconds, self.args.connections
        port = free_port()
        ceiling_app = [PY, str(BENCH / "ceiling.py"), str(port)]
        with process(ceiling_app, f"http://127.0.0.1:{port}/health"):
            ceiling = wrk(f"http://127.0.0.1:{port}", seconds, conns)
        schema, profile = self.schema(self.profiles)
        port, server = self.serve(schema, profile)
        with server:
            ledger = wrk(f"http://127.0.0.1:{port}", seconds, conns)
        acknowledged = ledger["requests"] - ledger["errors"]
        stored = self.count_orders(schema)
        if stored < acknowledged:
            raise SystemExit(f"only {stored} of {acknowledged} acknowledged orders are stored")
        ledger["durable_rps"] = acknowledged / ledger["seconds"]  # every 200 was committed first
        ledger["ratio_to_ceiling"] = ledger["rps"] / ceiling["rps"]
        schema, profile = self.schema(self.profiles)
        with Ledger(env=self.database_env(schema)) as setup:
            setup.import_profiles(self.profiles)
        port = free_port()
        naive_app = [PY, str(BENCH / "naive.py"), str(port), self.database.url, schema]
        with process(naive_app, f"http://127.0.0.1:{port}/health"):
            naive = wrk(f"http://127.0.0.1:{port}", seconds, conns)
        naive["ratio_to_ceiling"] = naive["rps"] / ceiling["rps"]
        self.results.update(ceiling=ceiling, ledger=ledger, naive=naive)

    def database_env(self, schema: str) -> dict[str, str]:
        database = Database(self.database.url, schema, 5)
        database.ensure_schema()
        return database.eventsourcing_env()

    def count_orders(self, schema: str) -> int:
        with self.database.connect() as conn:
            row = conn.execute(
                f'SELECT count(*) FROM "{schema}".ledger_events WHERE topic LIKE %s',
                ("%Order.Placed",),
            ).fetchone()
            return int(row[0]) if row else 0

    def run_fanout(self) -> None:
        users = [f"fan-{n:05d}" for n in range(self.args.fanout_users)]
        profiles = {u: {"STRATEGY_A": ["ACC", "INFY", "L&T"]} for u in users}
        schema, profile = self.schema(profiles)
        port, server = self.serve(schema, profile)
        timings = []
        with server, httpx.Client(timeout=60) as client:
            for n in range(10):
                body = {"STRATEGY": "STRATEGY_A", "INSTRUMENT": "ACC"}
                body["POSITION"] = "BUY" if n % 2 == 0 else "SELL"
                started = time.perf_counter()
                answer = client.post(f"http://127.0.0.1:{port}/order", json=body).json()
                timings.append((time.perf_counter() - started) * 1e3)
                assert len(answer["accepted_for"]) == len(users), answer["RESPONSE"]
        timings.sort()
        self.results["fanout"] = {
            "users": len(users),
            "median_ms": timings[len(timings) // 2],
            "max_ms": timings[-1],
        }

    def fill(self, schema: str, events: int) -> int:
        """Write orders straight through the ledger until the store holds `events` events."""
        rng = random.Random(2)
        with Ledger(env=self.database_env(schema)) as ledger:
            ledger.import_profiles(self.profiles)
            while (top := ledger.last_sequence()) < events:
                ledger.place_orders(
                    [
                        OrderRequest(
                            rng.choice(self.strategies),
                            rng.choice(self.instruments),
                            Position(rng.choice(["BUY", "SELL"])),
                        )
                        for _ in range(2000)
                    ]
                )
                print(f"\r  filling the store: {top:,} events", end="", file=sys.stderr)
        print(file=sys.stderr)
        return top

    def run_replay_and_restart(self) -> None:
        schema, profile = self.schema(self.profiles)
        events = self.fill(schema, self.args.events)
        replay = subprocess.run(
            [PY, "-m", "ledger.cli", "replay", "--quiet"],
            cwd=ROOT,
            env=self.env(schema),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rate = float(re.search(r"([\d,]+) events/s", replay)[1].replace(",", ""))  # type: ignore[index]
        self.results["replay"] = {"events": events, "events_per_s": rate}
        _, server = self.serve(schema, profile)
        with server as proc:
            self.results["restart"] = {"events": events, "seconds": proc.startup}

    def run_memory(self) -> None:
        rng = random.Random(3)
        profiles = {
            f"user-{n:05d}": {
                s: rng.sample(self.instruments, rng.randint(1, 10)) for s in self.strategies
            }
            for n in range(self.args.memory_users)
        }
        schema, profile = self.schema(profiles)
        _, server = self.serve(schema, profile)
        with server as proc:
            rss = psutil.Process(proc.pid).memory_info().rss / 2**20
            startup = proc.startup
        self.results["memory"] = {
            "users": len(profiles),
            "books": len(profiles) * len(self.strategies),
            "rss_mb": rss,
            "first_start_s": startup,
        }


TARGETS = [
    ("ledger", "durable_rps", ">=", 5000, "durable orders/s at 64 connections"),
    ("ledger", "p99_ms", "<=", 50, "ledger p99 latency (ms)"),
    ("ledger", "errors", "<=", 0, "ledger errors"),
    ("fanout", "median_ms", "<=", 300, "fan-out to 5,000 users (ms)"),
    ("replay", "events_per_s", ">=", 20000, "replay events/s"),
    ("restart", "seconds", "<=", 5, "restart to healthy (s)"),
    ("memory", "rss_mb", "<=", 500, "RSS with 10,000 users (MB)"),
]


def report(results: dict[str, Any]) -> str:
    lines = [f"{'figure':44} {'value':>12} {'target':>10}  met   value/target"]
    for section, key, op, target, label in TARGETS:
        if section not in results:
            continue
        value = results[section][key]
        met = value >= target if op == ">=" else value <= target
        ratio = f"{value / target:.2f}" if target else "-"
        lines.append(
            f"{label:44} {value:12,.1f} {op}{target:>8,}  {'yes' if met else 'NO ':4}  {ratio}"
        )
    c, ledger, naive = (results.get(k) for k in ("ceiling", "ledger", "naive"))
    if c and ledger and naive:
        lines.append("")
        lines.append(
            f"{'HTTP, 64 connections':28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs ceiling':>10}"
        )
        for name, f in (
            ("ceiling (minimal Starlette)", c),
            ("ledger", ledger),
            ("naive load-decide-save", naive),
        ):
            ratio = f["rps"] / c["rps"]
            lines.append(
                f"{name:28} {f['rps']:9,.0f} {f['p50_ms']:8.1f} {f['p99_ms']:8.1f} {f['errors']:7.0f} {ratio:10.2f}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--fanout-users", type=int, default=5000)
    parser.add_argument("--memory-users", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument(
        "--only",
        default="http,fanout,replay_and_restart,memory",
        help="comma-separated steps to run",
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.events, args.memory_users = 3, 20_000, 500
    bench = Bench(args)
    started = time.monotonic()
    try:
        for name in args.only.split(","):
            print(f"bench: {name}", file=sys.stderr)
            getattr(bench, f"run_{name}")()
    finally:
        bench.database.close()
    bench.results["machine"] = {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "database": "external (DATABASE_URL)" if os.environ.get("DATABASE_URL") else "embedded",
        "duration_s": round(time.monotonic() - started),
        "quick": args.quick,
    }
    (BENCH / "results.json").write_text(json.dumps(bench.results, indent=2) + "\n")
    print(report(bench.results))


if __name__ == "__main__":
    main()
