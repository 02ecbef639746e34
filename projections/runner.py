"""Keeping the read models up to date: the projection, its supervised runner, and replay."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.utils import get_topic

from ledger.application import Ledger
from ledger.domain import Book, Order, Roster
from projections.views import LedgerView, PlacedOrder

log = logging.getLogger(__name__)

PLACED_TOPIC = get_topic(Order.Placed)  # type: ignore[attr-defined]
# Position events are committed just before their order's Placed event, which carries the
# same decisions: the projection never needs to read them. Profile changes are read only to
# move the tracking position, so the lag is exact after an import too.
TOPICS = (
    PLACED_TOPIC,
    *(
        get_topic(event_class)
        for event_class in (
            Book.StrategyTakenUp,  # type: ignore[attr-defined]
            Book.InstrumentsChanged,  # type: ignore[attr-defined]
            Book.StrategyDropped,  # type: ignore[attr-defined]
            Roster.Started,  # type: ignore[attr-defined]
            Roster.BooksAdded,  # type: ignore[attr-defined]
        )
    ),
)
BATCH = 1000


class LedgerProjection(Projection[LedgerView]):
    """Turns the ledger's events into rows of the read tables."""

    name = "ledger_views"
    topics = TOPICS

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """One event and its tracking record, in one transaction."""
        self.process_events([(domain_event, tracking)])

    def process_events(self, batch: Sequence[tuple[Any, Tracking]]) -> None:
        """Many events in one view transaction, tracked at the last of them."""
        orders = [
            PlacedOrder.from_event(domain_event, tracking.notification_id)
            for domain_event, tracking in batch
            if isinstance(domain_event, Order.Placed)  # type: ignore[attr-defined]
        ]
        self.view.apply(orders, batch[-1][1])


class BatchingProjectionRunner(ProjectionRunner[Ledger, LedgerView]):
    """ProjectionRunner that hands the projection every event already fetched, at once."""

    @staticmethod
    def _process_events_loop(
        subscription: Any, projection: Any, is_stopping: threading.Event, runner: Any
    ) -> None:
        # 9.5.6's loop calls process_event() once per event: one view transaction each.
        # Here the subscription's already fetched pages (eventsourcing 9.5.6 internals,
        # pinned) are drained without blocking and processed together.
        pages = subscription.subscription
        try:
            for first in subscription:
                batch = [first]
                while len(batch) < BATCH and (
                    pages._notifications_index < len(pages._notifications)
                    or not pages._notifications_queue.empty()
                ):
                    batch.append(next(subscription))
                projection.process_events(batch)
        except BaseException as error:
            owner = runner()
            if owner is not None:
                owner._thread_error = error
        finally:
            is_stopping.set()


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

    def __init__(self, env: Mapping[str, str], url: str, retry_after: float = 1.0) -> None:
        self.env = dict(env)
        self.url = url
        self.retry_after = retry_after
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
            [sys.executable, "-m", "ledger.cli", "project", "--database-url", self.url],
            env=dict(env),
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only sets a signal, no threads touched
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


def _die_with_parent() -> None:
    # Linux: have the kernel send SIGTERM to the child when the server dies.
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def open_view(env: Mapping[str, str]) -> LedgerView:
    """A view recorder for reads and replays, with its tables created."""
    from eventsourcing.persistence import InfrastructureFactory  # noqa: PLC0415

    factory: Any = InfrastructureFactory.construct(
        env=ProjectionRunner._construct_env(LedgerProjection.name, dict(env))
    )
    view: LedgerView = factory.tracking_recorder(LedgerView)
    return view


def placed_pages(app: Any, stop: int, batch: int) -> Iterator[list[PlacedOrder]]:
    """Every Order.Placed event up to sequence `stop`, from the event store, a page at a time."""
    position = 0
    while position < stop:
        notifications = app.recorder.select_notifications(
            start=position, limit=batch, stop=stop, topics=[PLACED_TOPIC], inclusive_of_start=False
        )
        if not notifications:
            return
        yield [PlacedOrder.from_event(app.mapper.to_domain_event(n), n.id) for n in notifications]
        position = notifications[-1].id


def replay(
    env: Mapping[str, str],
    url: str,
    batch: int = 10_000,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Rebuild the read models from zero; returns (orders applied, events read)."""
    with projector_lock(url, env) as lock_conn:
        if lock_conn is None:
            msg = "a running server keeps the read models: stop it before replaying"
            raise RuntimeError(msg)
        with Ledger(env=dict(env)) as ledger:
            view = open_view(env)
            try:
                top = ledger.recorder.max_notification_id() or 0
                view.reset(ledger.name)
                done = 0
                position = 0
                for orders in placed_pages(ledger, top, batch):
                    position = orders[-1].sequence
                    view.apply(orders, Tracking(ledger.name, position))
                    done += len(orders)
                    if progress is not None:
                        progress(position, top)
                if position < top:  # the log ends with events that are not orders
                    view.insert_tracking(Tracking(ledger.name, top))
                if progress is not None:
                    progress(top, top)
                log.info("replayed %d orders, store read up to %d", done, top)
                return done, top
            finally:
                view.datastore.close()
