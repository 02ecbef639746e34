"""`ledger serve` with processes: HTTP workers, writer processes and the projector, supervised.

The supervisor opens the database (starting the embedded server), imports the profile file,
binds the listening socket and starts its children: K writer processes, each owning the
strategies of one hash partition; N HTTP workers sharing the socket; the projector. A child
that dies is started again; meanwhile the others answer 503 for what it did. SIGTERM stops
the workers first (they answer what is in flight), then the writers, then the projector.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

from ledger.processes import PROJECTOR, child_env, die_with_parent, writer_socket
from ledger.settings import Settings
from ledger.store.database import Database

log = logging.getLogger(__name__)

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
RESPAWN_AFTER = 0.5  # seconds: a child that keeps dying is not restarted in a hot loop
GRACE = 15.0  # seconds a child may take to stop before it is killed


@dataclass
class Child:
    """One supervised process and how to start it again."""

    name: str
    args: list[str]
    pass_fds: tuple[int, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    died_at: float | None = None
    env_extra: dict[str, str] = field(default_factory=dict)
    pid_file: Path | None = None  # where the HTTP workers look to tell whether it runs

    def start(self, env: dict[str, str]) -> None:
        """Start (again); `env_extra` applies to the first start only (an armed test fault)."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", *self.args],
            env={**env, **self.env_extra},
            pass_fds=self.pass_fds,
            preexec_fn=partial(die_with_parent, os.getpid()),  # noqa: PLW1509 - only sets a signal, no threads touched
        )
        self.died_at = None
        self.env_extra = {}
        if self.pid_file is not None:
            self.pid_file.write_text(str(self.proc.pid))

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM, and SIGKILL after the grace period."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=GRACE)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s: killed", self.name, GRACE)
            self.proc.kill()
            self.proc.wait()


def default_workers() -> int:
    """HTTP workers for this machine: a core is left for the writer, PostgreSQL and projector."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it
    sock.bind((host, port))
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


def _wait_for(path: Path, child: Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if not child.alive:
            msg = f"{child.name} exited with {child.proc.returncode if child.proc else '?'}"
            raise RuntimeError(msg)
        if time.monotonic() > deadline:
            msg = f"{child.name} did not listen within {timeout:.0f} s"
            raise RuntimeError(msg)
        time.sleep(0.05)  # polling another process's start-up


def _import(env: dict[str, str], settings: Settings) -> int:
    # Imported here, in the child: the supervisor, which lives as long as the service, never
    # loads the application (~15 MB of its resident memory).
    from ledger.application import Ledger  # noqa: PLC0415
    from ledger.bootstrap import import_profiles  # noqa: PLC0415
    from projections.runner import open_view  # noqa: PLC0415

    with Ledger(env=env) as ledger:
        import_profiles(ledger, settings)
        top = ledger.last_sequence()
    # The read tables exist before any child starts: CREATE TABLE IF NOT EXISTS races.
    open_view(env).datastore.close()
    return top


def _import_in_child(env: dict[str, str], settings: Settings) -> int:
    """Import the profile file and create the read tables in a forked child; the store's last
    sequence after it.

    The import loads every book: in the supervisor, which lives as long as the service, that
    memory would stay taken (CPython keeps freed small objects' arenas). A child returns it.
    """
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as child:
        return child.submit(_import, env, settings).result()


RUN_PREFIX = "ledger-run-"
# In a run directory, locked (flock) by the supervisor that made it for as long as it runs: a
# directory whose lock can be taken was left by one killed with -9. A lock, not a pid and its
# start time: those change meaning when the clock steps or another PID namespace shares /tmp.
OWNER = "supervisor.lock"


def sweep_stale_runs(parent: Path | None = None) -> list[Path]:
    """Remove the run directories of supervisors that died without cleaning up (kill -9);
    the ones removed. A directory without an owner file (being made) is left alone."""
    removed = []
    for run_dir in Path(parent or tempfile.gettempdir()).glob(RUN_PREFIX + "*"):
        try:
            with (run_dir / OWNER).open("rb") as owner:
                fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(run_dir)
        except OSError:  # held (its supervisor runs), not ours to remove, or no owner file
            continue
        removed.append(run_dir)
    return removed


def _new_run_dir() -> tuple[Path, IO[bytes]]:
    """A run directory of this supervisor's (sockets, pid files, metrics), stale ones gone,
    and its owner file, locked until closed (the process's end)."""
    for stale in sweep_stale_runs():
        log.info("removed %s, left by a supervisor that was killed", stale)
    run_dir = Path(tempfile.mkdtemp(prefix=RUN_PREFIX))
    (run_dir / "metrics").mkdir()
    # Locked before it has its name: a sweep never finds it unlocked.
    owner = (run_dir / "owner.new").open("wb")
    fcntl.flock(owner, fcntl.LOCK_EX)
    (run_dir / "owner.new").rename(run_dir / OWNER)
    return run_dir, owner


def _remove_run(run_dir: Path, owner: IO[bytes]) -> None:
    """This supervisor's run directory gone, and its lock let go."""
    shutil.rmtree(run_dir, ignore_errors=True)
    owner.close()


def serve(settings: Settings, workers: int, writers: int) -> int:
    """Run the service as processes until SIGTERM; 0 after a clean stop."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # taken with sigtimedwait below
    run_dir, owner = _new_run_dir()
    # The port first: a start that cannot serve must not import the profile file either (it
    # would change a store another server is serving, and record the file as applied).
    try:
        sock = _listen(settings.host, settings.port)
    except OSError as error:
        _remove_run(run_dir, owner)
        log.error("cannot listen on %s:%d: %s", settings.host, settings.port, error)
        return 1
    try:
        database = Database.open(settings)
    except BaseException:
        sock.close()
        _remove_run(run_dir, owner)
        raise
    children: list[Child] = []
    try:
        top = _import_in_child(database.eventsourcing_env(), settings)
        env = child_env(settings)
        # Secrets travel in the environment, never in argv (which `ps` shows).
        env.update(DATABASE_URL=database.url, PROMETHEUS_MULTIPROC_DIR=str(run_dir / "metrics"))
        run = ["--run-dir", str(run_dir), "--writers", str(writers)]
        for k in range(writers):
            child = Child(f"writer {k}", ["writer", *run, "--partition", str(k)])
            child.start(env)
            children.append(child)  # stopped in `finally` whatever fails after this
        # A fault armed for a test fires in the first writer it reaches, not in every new one.
        env.pop("LEDGER_FAULTS", None)
        # Workers start with the writers, not after them: a worker waits for its links before
        # it serves, and the two start-ups (~0.5 s of imports each) overlap: restart to
        # healthy 1.7-2.0 s -> 1.3-1.4 s (the projector with them too: 1.6-1.7 s).
        for n in range(workers):
            child = Child(f"worker {n}", ["worker", *run, "--fd", str(sock.fileno())])
            child.pass_fds = (sock.fileno(),)
            child.start(env)
            children.append(child)
        for k, child in enumerate(children[:writers]):
            _wait_for(writer_socket(run_dir, k), child, timeout=120)
        if settings.projections != "off":  # not on the way to serving: started last
            projector = Child("projector", ["project"], pid_file=run_dir / PROJECTOR)
            projector.env_extra = {"LEDGER_FAULTS": settings.faults}
            projector.start(env)
            children.append(projector)
        log.info(
            "ledger serving on %s:%d at sequence %d: %d HTTP worker(s), %d writer(s)",
            settings.host,
            settings.port,
            top,
            workers,
            writers,
        )
        received = _supervise(children, env, database)
        log.info("stopping on %s", signal.Signals(received).name)
        sock.close()
    finally:
        # Workers first (they answer what is in flight), then writers, then the projector.
        for kind in ("worker", "writer", "projector"):
            for child in children:
                if child.name.startswith(kind):
                    with contextlib.suppress(Exception):
                        child.stop()
        database.close()
        sock.close()
        _remove_run(run_dir, owner)
        log.info("ledger stopped")
    return 0


def _supervise(children: list[Child], env: dict[str, str], database: Database) -> int:
    """Start dead children again until a stop signal arrives; return that signal."""
    while True:
        info = signal.sigtimedwait(STOP_SIGNALS, 0.2)
        if info is not None:
            return info.si_signo
        if not database.running() and not any(t.name == "revive" for t in threading.enumerate()):
            # The children use its URL and cannot start it; in a thread, as pgserver may
            # wait for its start lock (one such thread at a time).
            threading.Thread(target=database.revive, name="revive", daemon=True).start()
        for child in children:
            if child.alive:
                continue
            now = time.monotonic()
            if child.died_at is None:
                code = child.proc.returncode if child.proc else None
                log.warning("%s exited with %s; starting it again", child.name, code)
                child.died_at = now
            elif now - child.died_at >= RESPAWN_AFTER:
                child.start({k: v for k, v in env.items() if k != "LEDGER_FAULTS"})
