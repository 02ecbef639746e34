"""Running the projection: one projector per schema, in a thread or a supervised process."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import Any

import psycopg
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.projection import ProjectionRunner

from ledger.application import Ledger
from ledger.overrides.storage import BatchingProjectionRunner, projection_env
from ledger.processes import die_with_parent
from projections.projection import LedgerProjection
from projections.views import LedgerView

log = logging.getLogger(__name__)


@contextmanager
def projector_lock(url: str, env: Mapping[str, str]) -> Iterator[psycopg.Connection[Any] | None]:
    """One projector per schema: yields the lock's connection, or None if another holds it."""
    key = f"{env.get('POSTGRES_SCHEMA', '')}.{LedgerProjection.name}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()
        if not row or not row[0]:
            yield None
            return
        try:
            yield conn
        finally:
            # Unlock before closing: a closed session lets go of its locks only some time
            # after the client has moved on, and a replay started right after would fail.
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))


class ProjectionService:
    """Runs the projection in the background, restarting it after database failures."""

    def __init__(
        self, env: Mapping[str, str], url: str, retry_after: float = 1.0, window: float = 0.0
    ) -> None:
        self.env = dict(env)
        self.url = url
        self.retry_after = retry_after
        # Under a steady flow, a batch starts at most `window` s after the last one ended, with
        # what came meanwhile: an order's decisions often open and close a position within
        # one batch, which is then never written, and each batch's fixed cost is shared by
        # more orders. 21 x 4 at ~1,700 orders/s: 0 -> 100 ms took the projection (its CPU and
        # its PostgreSQL work) from ~270 to ~185 us per order; live reads waited ~20 -> ~100 ms.
        # The same projection with a window; its name kept (a subclass would be named after
        # itself, with tracking records of its own).
        self.projection_class = (
            type(
                LedgerProjection.__name__,
                (LedgerProjection,),
                {"name": LedgerProjection.name, "window": window},
            )
            if window
            else LedgerProjection
        )
        self._stopping = threading.Event()
        self._runner: ProjectionRunner[Ledger, LedgerView] | None = None
        self._thread: threading.Thread | None = None
        self.running = threading.Event()  # set while this process holds the projector's lock

    @property
    def alive(self) -> bool:
        """Whether this process holds the projector's lock and runs the projection."""
        return self.running.is_set()

    def start(self) -> None:
        """Start the supervising thread."""
        self._thread = threading.Thread(target=self._supervise, name="projections", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop at a clean point: after the event being processed, never in its middle."""
        self._stopping.set()
        runner = self._runner
        if runner is not None:
            runner.stop()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            try:
                self._run_once()
            except Exception as failure:  # the database went away, or a view write failed
                log.warning("projection stopped (%s); restarting", failure)
            self._stopping.wait(self.retry_after)

    def _run_once(self) -> None:
        with projector_lock(self.url, self.env) as lock_conn:
            if lock_conn is None:
                return  # another process keeps the read models; try again later
            runner: ProjectionRunner[Ledger, LedgerView] = BatchingProjectionRunner(
                application_class=Ledger,
                projection_class=self.projection_class,
                view_class=LedgerView,
                env=self.env,
            )
            self._runner = runner
            self.running.set()
            try:
                with runner:
                    while not self._stopping.is_set():
                        runner.run_forever(timeout=1.0)
                        if runner.is_interrupted.is_set():
                            break
                        lock_conn.execute("SELECT 1")  # lost connection means lost lock
            finally:
                self.running.clear()
                self._runner = None
                runner.view.datastore.close()  # the runner closes its application, not its view


class ProjectionProcess:
    """Runs `ledger project` as a child process, so projecting does not share the server's GIL.

    A watchdog thread starts the child again if it dies; it dies with the server (even on
    SIGKILL) and stops with it on SIGTERM.
    """

    def __init__(self, url: str, env: Mapping[str, str]) -> None:
        self.url = url
        self.env = dict(env)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        """Whether the child is running."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the child and its watchdog."""
        self._spawn(self.env)
        self._watchdog = threading.Thread(
            target=self._watch, name="projector-watchdog", daemon=True
        )
        self._watchdog.start()

    def _spawn(self, env: Mapping[str, str]) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "project"],
            # The URL may hold a password: the environment, never argv (which `ps` shows).
            env={**env, "DATABASE_URL": self.url},
            preexec_fn=partial(die_with_parent, os.getpid()),  # noqa: PLW1509 - only sets a signal, no threads touched
        )

    def _watch(self) -> None:
        while not self._stopping.is_set():
            proc = self._proc
            if proc is None or proc.wait() is None or self._stopping.is_set():
                return
            log.warning("projection process exited with %s; starting it again", proc.returncode)
            if self._stopping.wait(1.0):
                return
            # A fault armed for a test fires once, not in every new child.
            self._spawn({k: v for k, v in self.env.items() if k != "LEDGER_FAULTS"})

    def stop(self) -> None:
        """SIGTERM: the child finishes its batch and exits."""
        self._stopping.set()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)


def open_view(env: Mapping[str, str]) -> LedgerView:
    """A view recorder for reads and replays, with its tables created."""
    factory: Any = InfrastructureFactory.construct(env=projection_env(LedgerProjection.name, env))
    view: LedgerView = factory.tracking_recorder(LedgerView)
    return view
