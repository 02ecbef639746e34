"""The composition root: builds, starts and stops the running parts of the service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator

from ledger import faults
from ledger.answers import Profiles
from ledger.application import Ledger
from ledger.metrics import Metrics
from ledger.profiles import load as load_profiles
from ledger.settings import Settings
from ledger.store.database import Database
from ledger.writer import Writer
from projections.runner import ProjectionProcess, ProjectionService, open_view
from projections.views import LedgerView

log = logging.getLogger(__name__)

Projector = ProjectionService | ProjectionProcess


@contextlib.contextmanager
def _reported(step: str) -> Iterator[None]:
    try:
        yield
    except Exception:
        log.exception("shutting down %s failed", step)


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of the projection process: the server's settings, not its DATABASE_URL."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # the URL is an argument
    env.update(
        LEDGER_DB_SCHEMA=settings.db_schema,
        LEDGER_LOG_DIR=str(settings.log_dir),
        LEDGER_LOG_LEVEL=settings.log_level,
        LEDGER_FAULTS=settings.faults,
    )
    return env


class Services:
    """Everything the HTTP layer uses: database, ledger, writer, read view, projections, metrics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self._database: Database | None = None
        self._ledger: Ledger | None = None
        self._view: LedgerView | None = None
        self._writer: Writer | None = None
        self.projector: Projector | None = None
        self.profiles: Profiles = {}

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
    def writer(self) -> Writer:
        """The single writer every order goes through."""
        assert self._writer is not None, "services not started"
        return self._writer

    async def start(self) -> None:
        """Open the database, import the profiles, start the writer and the projections."""
        settings = self.settings
        faults.install(settings.faults)
        self._database = database = await asyncio.to_thread(Database.open, settings)
        try:
            self._ledger = ledger = Ledger(env=database.eventsourcing_env())
            self._view = await asyncio.to_thread(open_view, database.eventsourcing_env())
            if settings.profiles is not None:
                report = await asyncio.to_thread(
                    ledger.import_profiles, load_profiles(settings.profiles)
                )
                log.info(
                    "profiles %s: %d added, %d changed, %d dropped",
                    settings.profiles,
                    len(report.added),
                    len(report.changed),
                    len(report.dropped),
                )
            self.profiles = await asyncio.to_thread(ledger.profiles)
            self._writer = Writer(
                ledger, max_batch=settings.max_batch, metrics=self.metrics, on_failure=self.heal
            )
            self._writer.start()
            if settings.projections == "thread":
                self.projector = ProjectionService(database.eventsourcing_env(), database.url)
            elif settings.projections == "process":
                self.projector = ProjectionProcess(database.url, child_env(settings))
            if self.projector is not None:
                self.projector.start()
            log.info("ledger ready at sequence %d", await asyncio.to_thread(ledger.last_sequence))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop everything started; each step runs even if one before it failed."""
        with _reported("writer"):
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
        self._writer = self._view = self._ledger = self._database = None
        self.projector = None
        log.info("ledger stopped")

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
