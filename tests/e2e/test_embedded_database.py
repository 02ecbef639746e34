"""The embedded PostgreSQL across crashes and races: a killed postmaster or sharer, initdb."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import fasteners
import httpx
import psutil
import pytest
from pgserver.postgres_server import PostgresServer

from tests.support import Server, free_port

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
STALE = "had died"  # the one line logged when a dead one's files are cleared
WAITING = "waiting for another start to finish"  # logged by a server held at pgserver's lock


def _postmaster(data_dir: Path) -> int:
    return int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])


def _postgres_on(data_dir: Path) -> list[psutil.Process]:
    """The live processes whose command line names the data directory."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(str(data_dir) in a for a in cmdline):
            found.append(proc)
    return found


@pytest.fixture
def never_reaping() -> Iterator[None]:
    """This process adopts the servers' orphans (the postmaster) and does not reap them."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        # Only the adopted postgres processes: reaping a Popen's child would lose its exit code.
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error, ChildProcessError):
                if child.name() == "postgres" and child.status() == psutil.STATUS_ZOMBIE:
                    os.waitpid(child.pid, 0)


@pytest.mark.usefixtures("never_reaping")
@pytest.mark.parametrize("reaped", [False, True], ids=["zombie", "gone"])
def test_restart_right_after_postgres_was_killed(
    reaped: bool, make_server: Callable[[str], Server], data_dir: Path
) -> None:
    server = make_server("embedded")
    postmaster = _postmaster(data_dir)
    os.kill(postmaster, signal.SIGKILL)
    if reaped:
        os.waitpid(postmaster, 0)  # its pid file stays, naming no process (its children may)
    server.kill()
    server.start()  # at once: the old postmaster's pid file (and its children) may remain
    assert httpx.get(f"{server.url}/health", timeout=10).json()["status"] == "ok"
    assert _postmaster(data_dir) != postmaster
    output = server.log.read_text()
    assert "Traceback" not in output
    assert output.count(STALE) == 1, output
    assert server.stop() == 0


def test_survivor_of_a_killed_sharer_stops_postgres(
    make_server: Callable[[str], Server], data_dir: Path
) -> None:
    first = make_server("embedded")
    args = list(first.args)
    args[args.index("--port") + 1] = str(free_port())
    second = Server(args, first.env, first.log.with_name("second.log"))
    second.start()
    try:
        assert _postgres_on(data_dir)
        first.kill()
    finally:
        code = second.stop()
    assert code == 0
    deadline = time.monotonic() + 15
    while (left := _postgres_on(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)  # polling processes another process stops
    assert left == [], [p.info["cmdline"] for p in left]


def _wait_for_line(server: Server, text: str, timeout: float = 60) -> None:
    """Wait until the server's log says `text` (fails if the server exits first)."""
    assert server.proc is not None
    deadline = time.monotonic() + timeout
    while text not in server.log.read_text():
        if server.proc.poll() is not None:
            pytest.fail(f"server exited with {server.proc.returncode}:\n{server.log.read_text()}")
        assert time.monotonic() < deadline, f"no {text!r} in:\n{server.log.read_text()}"
        time.sleep(0.1)  # polling a process we do not control


def test_servers_started_during_initdb_wait_for_it_and_share_one_postmaster(
    data_dir: Path, profile_file: Path, server_env: dict[str, str], tmp_path: Path
) -> None:
    pgdata = data_dir / "pg"
    pgdata.mkdir()
    servers = []
    for n in range(2):
        args = ["--port", str(free_port()), "--profiles", str(profile_file)]
        args += ["--data-dir", str(data_dir), "--host", "127.0.0.1"]
        servers.append(Server(args, server_env, tmp_path / f"server-{n}.log"))
    # This test plays the first server mid-initdb: it holds pgserver's start lock, and
    # postmaster.pid names initdb's standalone backend by its negated pid, as postgres writes it.
    start_lock = fasteners.InterProcessLock(PostgresServer.lock_path)
    try:
        # A live stand-in for the backend: `cat` lives until its stdin closes.
        with start_lock, subprocess.Popen(["cat"], stdin=subprocess.PIPE) as backend:
            (pgdata / "postmaster.pid").write_text(f"-{backend.pid}\n{pgdata}\n0\n5432\n\n\n")
            for server in servers:
                server.launch()
            for server in servers:
                _wait_for_line(server, WAITING)  # not a traceback on the negative pid
            # initdb's backend removes its pid file as it exits; then the lock is let go.
            (pgdata / "postmaster.pid").unlink()
        for server in servers:
            server.wait_healthy()
        postmaster = _postmaster(data_dir)
        for server in servers:
            output = server.log.read_text()
            assert "Traceback" not in output
            assert f"postmaster {postmaster}\n" in output, output  # started it, or reusing it
        assert [server.stop() for server in servers] == [0, 0]
    finally:
        for server in servers:
            if server.proc is not None and server.proc.poll() is None:
                server.kill()
