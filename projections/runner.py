"""Keeping the read models up to date: the projection, its supervised runner, and replay."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from functools import singledispatchmethod
from typing import Any

import psycopg
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.utils import get_topic

from ledger.application import Ledger
from ledger.domain import Book, Order
from projections.views import LedgerView, PlacedOrder

log = logging.getLogger(__name__)

PLACED_TOPIC = get_topic(Order.Placed)  # type: ignore[attr-defined]
# Book position events are committed just before their order's Placed event, which carries
# the same decisions, so they need neither a view change nor a tracking record of their own.
FOLLOWED_BY_ORDER = (Book.PositionOpened, Book.PositionClosed)  # type: ignore[attr-defined]


class LedgerProjection(Projection[LedgerView]):
    """Turns the ledger's events into rows of the read tables."""

    name = "ledger_views"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        if isinstance(domain_event, FOLLOWED_BY_ORDER):
            return
        self.view.insert_tracking(tracking)  # profile changes: nothing to show, but count them

    @process_event.register(Order.Placed)  # type: ignore[attr-defined]
    def _(self, domain_event: Any, tracking: Tracking) -> None:
        order = PlacedOrder.from_event(domain_event, tracking.notification_id)
        self.view.apply([order], tracking)


def projection_env(ledger_env: Mapping[str, str]) -> dict[str, str]:
    """The environment for the projection runner, from the ledger's."""
    return dict(ledger_env)


def _take_lock(conn: psycopg.Connection[Any], env: Mapping[str, str]) -> bool:
    """One projector per schema: a second process (or a replay) waits its turn."""
    key = f"{env.get('POSTGRES_SCHEMA', '')}.{LedgerProjection.name}"
    row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()
    return bool(row and row[0])


class ProjectionService:
    """Runs the projection in the background, restarting it after database failures."""

    def __init__(self, env: Mapping[str, str], url: str, retry_after: float = 1.0) -> None:
        self.env = projection_env(env)
        self.url = url
        self.retry_after = retry_after
        self._stopping = threading.Event()
        self._runner: ProjectionRunner[Ledger, LedgerView] | None = None
        self._thread: threading.Thread | None = None
        self.running = threading.Event()  # set while this process holds the projector's lock

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
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as lock_conn:
            if not _take_lock(lock_conn, self.env):
                return  # another process keeps the read models; try again later
            runner: ProjectionRunner[Ledger, LedgerView] = ProjectionRunner(
                application_class=Ledger,
                projection_class=LedgerProjection,
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


def open_view(env: Mapping[str, str]) -> LedgerView:
    """A view recorder for reads and replays, with its tables created."""
    from eventsourcing.persistence import InfrastructureFactory  # noqa: PLC0415

    factory: Any = InfrastructureFactory.construct(
        env=ProjectionRunner._construct_env(LedgerProjection.name, projection_env(env))
    )
    view: LedgerView = factory.tracking_recorder(LedgerView)
    return view


def replay(
    env: Mapping[str, str],
    url: str,
    batch: int = 5000,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Rebuild the read models from zero; returns the number of orders applied."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as lock_conn:
        if not _take_lock(lock_conn, env):
            msg = "a running server keeps the read models: stop it before replaying"
            raise RuntimeError(msg)
        with Ledger(env=projection_env(env)) as ledger:
            view = open_view(env)
            try:
                top = ledger.recorder.max_notification_id() or 0
                view.reset(ledger.name)
                done = 0
                position = 0
                while position < top:
                    notifications = ledger.recorder.select_notifications(
                        start=position,
                        limit=batch,
                        stop=top,
                        topics=[PLACED_TOPIC],
                        inclusive_of_start=False,
                    )
                    if not notifications:
                        break
                    orders = [
                        PlacedOrder.from_event(ledger.mapper.to_domain_event(n), n.id)
                        for n in notifications
                    ]
                    position = notifications[-1].id
                    view.apply(orders, Tracking(ledger.name, position))
                    done += len(orders)
                    if progress is not None:
                        progress(position, top)
                if position < top:  # the log ends with events that are not orders
                    view.insert_tracking(Tracking(ledger.name, top))
                if progress is not None:
                    progress(top, top)
                log.info("replayed %d orders, store read up to %d", done, top)
                return done
            finally:
                view.datastore.close()
