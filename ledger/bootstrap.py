"""The composition root: builds, starts and stops the running parts of the service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import psutil

from ledger import faults, heap
from ledger.application import Ledger
from ledger.metrics import Metrics
from ledger.processes import PROJECTOR, child_env, writer_socket
from ledger.profile_import import digest
from ledger.profiles import load as load_profiles
from ledger.settings import Settings
from ledger.store.database import Database
from ledger.wire import Desk, partition
from ledger.writer import Writer
from ledger.writer_client import RemoteWriter
from projections.hub import Hub
from projections.runner import ProjectionProcess, ProjectionService, open_view
from projections.views import LedgerView

log = logging.getLogger(__name__)

Projector = ProjectionService | ProjectionProcess
Role = Literal["all", "writer", "worker"]
# A projection behind the store whose position has not moved for this long is stalled: reads
# keep answering, but only up to that position (/health says degraded).
STALL_SECONDS = 10.0


def import_profiles(ledger: Ledger, settings: Settings) -> None:
    """Import the profile file, if one is configured, and log what it changed."""
    if settings.profiles is None:
        return
    document = load_profiles(settings.profiles)
    report = ledger.import_profiles(document, file_digest=digest(document))
    if report.skipped:
        # The API's changes since the last import stand: the file is applied only when it changes.
        log.info("profiles %s: unchanged file: not applied", settings.profiles)
        return
    log.info(
        "profiles %s: %d added, %d changed, %d dropped",
        settings.profiles,
        len(report.added),
        len(report.changed),
        len(report.dropped),
    )


@contextlib.contextmanager
def _reported(step: str) -> Iterator[None]:
    try:
        yield
    except Exception:
        log.exception("shutting down %s failed", step)


class Services:
    """Everything the HTTP layer uses: database, ledger, writer, read view, projections, metrics.

    Its role says which parts run here: "all" in one process; "writer" in a writer process
    (the ledger and its writer); "worker" in an HTTP worker (reads, and a link to the writers
    whose sockets are in `run_dir`).
    """

    def __init__(
        self,
        settings: Settings,
        role: Role = "all",
        run_dir: Path | None = None,
        writers: int = 1,
        partition: int = 0,
    ) -> None:
        self.settings = settings
        self.role = role
        self.run_dir = run_dir
        self.writers = writers
        self.partition = partition  # a writer's: the strategies it owns (see wire.partition)
        self.metrics = Metrics()
        self._database: Database | None = None
        self._ledger: Ledger | None = None
        self._view: LedgerView | None = None
        self._writer: Writer | None = None
        self._desk: Desk | None = None
        self.projector: Projector | None = None
        self._hub: Hub | None = None

    @property
    def database(self) -> Database:
        """The PostgreSQL server in use."""
        assert self._database is not None, "services not started"
        return self._database

    @property
    def ledger(self) -> Ledger:
        """The write side's application."""
        assert self._ledger is not None, "services not started"
        return self._ledger

    @property
    def view(self) -> LedgerView:
        """The read models."""
        assert self._view is not None, "services not started"
        return self._view

    @property
    def hub(self) -> Hub:
        """The stream's tail of the store and its subscribers (HTTP roles)."""
        assert self._hub is not None, "no stream in this process"
        return self._hub

    @property
    def writer(self) -> Writer:
        """The writer in this process (roles "all" and "writer")."""
        assert self._writer is not None, "no writer in this process"
        return self._writer

    def _owned(self, strategy: str) -> bool:
        """Whether this process's writer decides the strategy's orders."""
        return partition(strategy, self.writers) == self.partition

    @property
    def desk(self) -> Desk:
        """Where orders go: this process's writer, or the writer processes."""
        assert self._desk is not None, "services not started"
        return self._desk

    async def start(self) -> None:
        """Open the database, import the profiles, start the writer and the projections."""
        settings = self.settings
        faults.install(settings.faults)
        self._database = database = await asyncio.to_thread(Database.open, settings)
        try:
            self._ledger = ledger = Ledger(env=database.eventsourcing_env())
            if self.role != "writer":
                self._view = await asyncio.to_thread(open_view, database.eventsourcing_env())
                self._hub = Hub(ledger)
            if self.role == "all":
                await asyncio.to_thread(import_profiles, ledger, settings)
            if self.role == "worker":
                await self._link_writers()
            else:
                if self.partition == 0:  # one writer for the one roster
                    await asyncio.to_thread(ledger.catch_up_roster_snapshot)
                self._desk = self._writer = Writer(
                    ledger,
                    max_batch=settings.max_batch,
                    metrics=self.metrics,
                    on_failure=self.heal,
                    warm_up=self._owned if settings.warm_up else None,
                )
                self._writer.start()
            heap.settle()  # what is built from here on is the running process's own
            if self.role != "all":
                log.info("%s %d ready", self.role, os.getpid())
                return
            if settings.projections == "thread":
                self.projector = ProjectionService(
                    database.eventsourcing_env(), database.url, window=settings.projection_window
                )
            elif settings.projections == "process":
                self.projector = ProjectionProcess(database.url, child_env(settings))
            if self.projector is not None:
                self.projector.start()
            log.info("ledger ready at sequence %d", await asyncio.to_thread(ledger.last_sequence))
        except BaseException:
            await self.stop()
            raise

    async def _link_writers(self) -> None:
        assert self.run_dir is not None, "a worker needs the run directory"
        remote = RemoteWriter([writer_socket(self.run_dir, k) for k in range(self.writers)])
        self._desk = remote
        remote.start()
        try:
            await remote.wait_connected(timeout=30)
        except TimeoutError:
            log.warning("no writer reachable yet: orders answer 503 until one is")

    async def stop(self) -> None:
        """Stop everything started; each step runs even if one before it failed."""
        with _reported("stream"):
            if self._hub is not None:
                await asyncio.to_thread(self._hub.close)
        with _reported("writer"):
            if isinstance(self._desk, RemoteWriter):
                await self._desk.stop()
            if self._writer is not None:
                await self._writer.stop()
        with _reported("projections"):
            if self.projector is not None:
                await asyncio.to_thread(self.projector.stop)
        for name, close in (
            ("read models", self._view.datastore.close if self._view is not None else None),
            ("ledger", self._ledger.close if self._ledger is not None else None),
            ("database", self._database.close if self._database is not None else None),
        ):
            with _reported(name):
                if close is not None:
                    close()
        self._writer = self._desk = self._view = self._ledger = self._database = None
        self._hub = None
        self.projector = None
        log.info("ledger stopped")

    def projector_alive(self) -> bool:
        """Whether a projector runs: this process's, or the supervisor's child."""
        if self.projector is not None:
            return self.projector.alive
        if self.run_dir is None:
            return False
        try:
            pid = int((self.run_dir / PROJECTOR).read_text())
        except (OSError, ValueError):
            return False
        try:
            return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False

    def heal(self) -> None:
        """After a database failure: restart an embedded server, drop broken pooled connections."""
        if self._database is None:
            return
        self._database.revive()
        datastores = [self._ledger.store.datastore] if self._ledger is not None else []
        datastores += [self._view.datastore] if self._view is not None else []
        for datastore in datastores:
            with contextlib.suppress(Exception):
                datastore.pool.check()

    def positions(self) -> tuple[int, int]:
        """(the store's last sequence, the read models' processed sequence)."""
        return self.ledger.last_sequence(), self.view.max_tracking_id(Ledger.name) or 0

    # (processed, when it was first seen with a lag): what projection_stalled() compares with.
    _progress: tuple[int, float] | None = None

    def projection_stalled(self, sequence: int, processed: int, now: float | None = None) -> bool:
        """Whether the projection is behind the store and has not moved for STALL_SECONDS."""
        now = time.monotonic() if now is None else now
        if processed >= sequence:
            self._progress = None  # caught up: a later lag is timed from when it is first seen
            return False
        if self._progress is None or self._progress[0] != processed:
            self._progress = (processed, now)
            return False
        return now - self._progress[1] >= STALL_SECONDS


@contextlib.contextmanager
def store(settings: Settings) -> Iterator[Database]:
    """The database alone, for the commands that work on the store without serving."""
    database = Database.open(settings)
    try:
        yield database
    finally:
        database.close()


@contextlib.contextmanager
def read_models(settings: Settings) -> Iterator[LedgerView]:
    """The read models, for the commands that print them."""
    with store(settings) as database:
        view = open_view(database.eventsourcing_env())
        try:
            yield view
        finally:
            view.datastore.close()
