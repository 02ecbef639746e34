"""Every use of a library's private parts (eventsourcing, pgserver, pydantic-settings), here.

Each function here leans on something the libraries do not promise to keep. `missing()`
lists what an upgrade has moved, so a test fails here rather than a running projector.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import BaseAggregate
from eventsourcing.persistence import Recording, Tracking
from eventsourcing.postgres import PostgresSubscription, PostgresTrackingRecorder
from eventsourcing.projection import ProjectionRunner
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg_pool.base import AttemptWithBackoff
from pydantic_settings import BaseSettings, EnvSettingsSource

log = logging.getLogger(__name__)

# (owner, attribute, parameters it must accept): what the functions below rely on.
RELIED_ON: list[tuple[Any, str, tuple[str, ...]]] = [
    (BaseAggregate, "__base_init__", ("originator_id", "originator_version", "timestamp")),
    (Application, "_record", ("processing_event",)),
    (Application, "_notify", ("recordings",)),
    (ProjectionRunner, "_construct_env", ("name", "env")),
    (ProjectionRunner, "_process_events_loop", ("subscription", "projection", "is_stopping")),
    (PostgresTrackingRecorder, "_insert_tracking", ("curs", "tracking")),
    (EnvSettingsSource, "_load_env_vars", ()),
    (PostgresSubscription, "_listen", ()),  # ledger.overrides.subscription
]
# Instance attributes, seen only on live objects: (class path, attribute).
RELIED_ON_INSTANCES = [
    ("eventsourcing.persistence.Subscription", "_notifications"),
    ("eventsourcing.persistence.Subscription", "_notifications_index"),
    ("eventsourcing.persistence.Subscription", "_notifications_queue"),
    ("eventsourcing.projection.ProjectionRunner", "_thread_error"),
    ("eventsourcing.persistence.ListenNotifySubscription", "_select_limit"),
    ("eventsourcing.persistence.ListenNotifySubscription", "_has_been_notified"),
    ("eventsourcing.persistence.ListenNotifySubscription", "_thread_error"),
    ("eventsourcing.persistence.Subscription", "_has_been_stopped"),
    ("eventsourcing.persistence.Subscription", "_recorder"),
    # BatchingProjectionRunner reads through a projection's decoder, as __next__ would.
    ("eventsourcing.projection.ApplicationSubscription", "subscription"),
    ("eventsourcing.projection.ApplicationSubscription", "name"),
    ("eventsourcing.projection.ApplicationSubscription", "mapper"),
]
PGSERVER_HANDLES = ".handle_pids.json"
RECONNECT_EVERY = 1.0  # seconds between a pool's attempts to reconnect, however long the outage


def steady_reconnects() -> None:
    """Pools retry a lost database every second, not with a backoff that doubles each time.

    psycopg_pool waits 1, 2, 4, 8... s between attempts: after a 30 s outage the next one could
    be 30 s after the database is back, and every commit meanwhile times out (503) while
    /health already says ok. A connection attempt a second costs nothing.
    """
    AttemptWithBackoff.INITIAL_DELAY = RECONNECT_EVERY
    AttemptWithBackoff.DELAY_BACKOFF = 1.0  # pgserver's list of processes using a server


def missing() -> list[str]:
    """What an upgrade has moved: class attributes gone or with other parameters."""
    from pgserver.postgres_server import PostgresServer  # noqa: PLC0415 - heavy, embedded only

    lock = getattr(PostgresServer, "_lock", None)
    problems = [] if lock is not None else ["PostgresServer._lock is gone"]
    if lock is not None and not hasattr(lock, "path"):
        problems.append("PostgresServer._lock.path is gone")
    problems += [
        f"psycopg_pool AttemptWithBackoff.{name} is gone"
        for name in ("INITIAL_DELAY", "DELAY_BACKOFF", "update_delay")
        if not hasattr(AttemptWithBackoff, name)
    ]
    for owner, name, parameters in [
        *RELIED_ON,
        (PostgresServer, "ensure_postgres_running", ()),
        (PostgresServer, "cleanup", ()),
        *([(type(lock), "acquire", ("blocking", "timeout"))] if lock is not None else []),
        *([(type(lock), "_do_close", ())] if lock is not None else []),
    ]:
        target = getattr(owner, name, None)
        if target is None:
            problems.append(f"{owner.__name__}.{name} is gone")
            continue
        if not callable(target):
            continue
        accepted = inspect.signature(target).parameters
        problems += [
            f"{owner.__name__}.{name} no longer takes {p}" for p in parameters if p not in accepted
        ]
    return problems


# eventsourcing: saving without ProcessingEvent.collect_events' per-object Protocol checks
# (slow on Python 3.11), and snapshots taken by the caller from memory.


def _collect(objs: Sequence[Any], kwargs: Mapping[str, Any]) -> ProcessingEvent[Any]:
    """The aggregates' pending events, as ProcessingEvent.collect_events gathers them."""
    processing_event: ProcessingEvent[Any] = ProcessingEvent()
    for aggregate in objs:
        processing_event.events.extend(aggregate.collect_events())
        processing_event.aggregates[aggregate.id] = aggregate
    processing_event.saved_kwargs.update(kwargs)
    return processing_event


def record(
    app: Application[Any], objs: Sequence[Any], kwargs: Mapping[str, Any]
) -> tuple[ProcessingEvent[Any], list[Recording[Any]]]:
    """Store the aggregates' pending events in one transaction, as Application.save does."""
    processing_event = _collect(objs, kwargs)
    return processing_event, app._record(processing_event)


@dataclass(frozen=True)
class PreparedBatch:
    """A batch's events, collected from their aggregates and mapped to their stored form."""

    processing_event: ProcessingEvent[Any]
    stored_events: list[Any]


def prepare_batch(
    app: Application[Any], objs: Sequence[Any], kwargs: Mapping[str, Any]
) -> PreparedBatch:
    """Collect the aggregates' pending events and map them, ready for store_batch()."""
    processing_event = _collect(objs, kwargs)
    return PreparedBatch(
        processing_event, list(map(app.mapper.to_stored_event, processing_event.events))
    )


def store_batch(app: Application[Any], batch: PreparedBatch) -> list[int]:
    """Store a prepared batch in one transaction; each event's notification id."""
    # Application._record stores through EventStore.put, which builds a Recording and a
    # Notification per event (~1.6 µs) of which the writer reads one number. The same steps
    # run here without them, unless the application has followers that _notify must tell.
    processing_event = batch.processing_event
    if type(app)._notify is not Application._notify:
        recordings = app._record(processing_event)
        notify(app, recordings)
        return [r.notification.id for r in recordings]
    ids = app.recorder.insert_events(
        batch.stored_events, tracking=processing_event.tracking, **processing_event.saved_kwargs
    )
    if app.repository.cache and not app.repository.fastforward:
        for aggregate_id, aggregate in processing_event.aggregates.items():
            app.repository.cache.put(aggregate_id, aggregate)
    return list(ids or ())


def notify(app: Application[Any], recordings: list[Recording[Any]]) -> None:
    """Tell the application's followers about new recordings, as Application.save does."""
    app._notify(recordings)


def buffered(subscription: Any) -> bool:
    """Whether a ListenNotifySubscription holds fetched notifications: next() will not block."""
    return bool(
        subscription._notifications_index < len(subscription._notifications)
        or not subscription._notifications_queue.empty()
    )


def set_page_size(subscription: Any, size: int) -> None:
    """How many notifications a ListenNotifySubscription fetches at a time (its queue holds 10)."""
    subscription._select_limit = size


def projection_env(name: str, env: Mapping[str, str]) -> Any:
    """The environment a ProjectionRunner builds its view recorder from."""
    return ProjectionRunner._construct_env(name, dict(env))


def insert_tracking(
    recorder: PostgresTrackingRecorder, curs: Cursor[DictRow], tracking: Tracking
) -> None:
    """Record a tracking position inside the caller's transaction."""
    recorder._insert_tracking(curs, tracking)


def _reader(subscription: Any, projection: Any) -> Callable[[], tuple[Any, Tracking]]:
    """next(subscription), but read by the projection's own decoder(mapper) when it has one."""
    # ApplicationSubscription makes a domain event of every stored event; a projection may
    # need less (LedgerProjection reads an order without its event object).
    make = getattr(projection, "decoder", None)
    if make is None:
        return functools.partial(next, subscription)
    decode = make(subscription.mapper)
    pages, name = subscription.subscription, subscription.name

    def take() -> tuple[Any, Tracking]:
        notification = next(pages)
        return decode(notification), Tracking(name, notification.id)

    return take


class BatchingProjectionRunner(ProjectionRunner[Any, Any]):
    """ProjectionRunner that hands the projection the events already fetched, in bounded batches."""

    # A batch holds at most `batch` events and at most the projection's `budget` of its
    # `cost(event)` (always at least one event): its memory and its view transaction stay
    # bounded at any fan-out. Also relies on ListenNotifySubscription's `_select_limit`.

    batch = 1000  # most events in one batch
    pages_per_budget = 4  # the subscription fetches pages of about budget / 4 of cost
    most_per_page = 500  # eventsourcing's own page size: kept for small events

    @staticmethod
    def _process_events_loop(
        subscription: Any,
        projection: Any,
        is_stopping: threading.Event,
        runner: weakref.ReferenceType[Any],
    ) -> None:
        # 9.5.6's loop calls process_event() once per event: one view transaction each.
        # Here the subscription's already fetched pages are drained without blocking and
        # processed together, up to the batch's bounds.
        this = BatchingProjectionRunner
        pages = subscription.subscription
        budget: float = getattr(projection, "budget", float("inf"))
        cost = getattr(projection, "cost", lambda _event: 1)
        held: Any = None  # fetched, but over the last batch's budget: it starts the next
        window: float = getattr(projection, "window", 0.0)  # see ProjectionService
        ended = 0.0  # when the last batch was written
        try:
            # Inside: a decoder that fails to build stops the runner with its error, as any.
            take = _reader(subscription, projection)
            while True:
                if held is None:
                    try:
                        held = take()  # blocks until an event comes, or a stop
                    except StopIteration:
                        return
                if window and (delay := ended + window - time.monotonic()) > 0:
                    is_stopping.wait(delay)  # events keep coming: let more gather
                batch, total, held = [held], cost(held[0]), None
                try:
                    while len(batch) < this.batch and (
                        pages._notifications_index < len(pages._notifications)
                        or not pages._notifications_queue.empty()
                    ):
                        item = take()
                        size = cost(item[0])
                        if total + size > budget:
                            held = item
                            break
                        batch.append(item)
                        total += size
                except StopIteration:
                    held = None  # stopping: what was taken is still processed, then no more
                projection.process_events(batch)
                ended = time.monotonic()
                this._size_pages(pages, budget, len(batch), total)
        except BaseException as error:
            owner = runner()
            if owner is not None:
                owner._thread_error = error
        finally:
            is_stopping.set()

    @staticmethod
    def _size_pages(pages: Any, budget: float, events: int, total: int) -> None:
        # The subscription prefetches up to 10 pages ahead: pages of a fixed 500 events of
        # a big fan-out would hold gigabytes. Size them by the cost of what just came.
        if budget == float("inf") or not hasattr(pages, "_select_limit"):
            return
        this = BatchingProjectionRunner
        fitting = int(budget * events / (this.pages_per_budget * max(total, 1)))
        pages._select_limit = max(1, min(this.most_per_page, fitting))


# pydantic-settings: its environment source, reading a given mapping instead of os.environ
# (tests and `Settings.from_env(env)`).


class MappingEnvSource(EnvSettingsSource):
    """The environment source of pydantic-settings, reading a given mapping."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env  # before super().__init__, which loads the variables
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The source matches lower-cased names (prefix + field name); taking only upper-case
        # variables keeps the names exact. A blank variable means "unset", as it always has.
        return {k.lower(): v for k, v in self._env.items() if k.isupper() and v.strip()}


# pgserver: its list of processes using a server, its start lock, and the postmaster.pid it
# trusts. A postmaster killed with -9 leaves its pid file; while that pid is a zombie (a parent
# that never reaps) pgserver takes it for running and postgres refuses to start over it.
# While initdb runs, the file names its standalone backend by the negated pid (postgres's own
# convention), which psutil refuses and which is no postmaster to connect to.

POSTMASTER_PID = "postmaster.pid"
STALE_WAIT = 15.0  # seconds a dead postmaster's processes may take to let go of its memory
# Seconds to wait for another process's start (initdb and a start take a few): pgserver's lock
# is one per user, for every data directory, and it would wait forever on a hung holder.
START_WAIT = 60.0


class StartBlocked(RuntimeError):
    """pgserver cannot start PostgreSQL on the data directory now."""


def _alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (psutil counts those as existing)."""
    try:
        status = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    return bool(status != psutil.STATUS_ZOMBIE)


def _postmaster_lines(pgdata: Path) -> list[str]:
    with contextlib.suppress(OSError):
        return (pgdata / POSTMASTER_PID).read_text().splitlines()
    return []


def _pid_of(lines: list[str]) -> int | None:
    """The pid file's first line: a postmaster's pid, a standalone backend's negated; or None."""
    # Read without the lock, the file may be empty or half-written: postgres creates it first.
    try:
        pid = int(lines[0])
    except (IndexError, ValueError):
        return None
    return pid or None


def _why_dead(pgdata: Path, pid: int) -> str | None:
    """Why the process of pgdata's pid file (`pid`, negated: standalone) is not running."""
    try:
        proc = psutil.Process(abs(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return "a zombie nobody reaped"
        if pid < 0:
            # initdb hands its backends the directory in PGDATA, not on their command line.
            if proc.name() != "postgres":
                return f"its pid now belongs to {proc.name()}"
        elif not any(str(pgdata) in arg for arg in proc.cmdline()):
            return f"its pid now belongs to {proc.name()}"
    except psutil.NoSuchProcess:
        return "gone"
    except psutil.AccessDenied:
        pass  # another user's live process: assume the postmaster, as postgres itself would
    return None


def _named(pid: int) -> str:
    return f"postmaster {pid}" if pid > 0 else f"standalone postgres {-pid}"


def live_postmaster(pgdata: Path) -> int | None:
    """The pid of the postmaster running on pgdata, if one is (initdb's backend is none)."""
    pid = _pid_of(_postmaster_lines(pgdata))
    if pid is None or pid < 0:
        return None
    return None if _why_dead(pgdata, pid) else pid


def _attached(shmid: str) -> int:
    """Processes attached to a System V shared memory segment (0 when it is gone)."""
    with contextlib.suppress(OSError):
        for row in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]:
            fields = row.split()
            if fields[1] == shmid:
                return int(fields[6])
    return 0


def _clear_dead_postmaster(pgdata: Path) -> bool:
    """Remove the pid file of a dead postmaster (under pgserver's lock); whether there was one."""
    lines = _postmaster_lines(pgdata)
    pid = _pid_of(lines)
    if pid is None:
        return False
    why = _why_dead(pgdata, pid)
    if why is None and pid < 0:
        # Under the lock, initdb's backend can only be another lock's (another XDG_RUNTIME_DIR)
        # or someone's single-user session: pgserver would fail on its pid, or start over it.
        msg = f"{_named(pid)} (initdb or single-user mode) is using {pgdata}"
        raise StartBlocked(msg)
    if why is None:
        return False
    # Its backends and helpers exit when they notice it died; until then postgres refuses to
    # start ("pre-existing shared memory block is still in use"). Line 7: shm key and id.
    shm = lines[6].split() if len(lines) > 6 else []
    started = time.monotonic()
    while shm[1:] and _attached(shm[1]) and time.monotonic() - started < STALE_WAIT:
        time.sleep(0.05)  # polling processes we cannot wait on (not our children)
    # Postgres also locks its socket with a file naming the postmaster (lines 4-5: port and
    # socket directory), and takes a zombie's pid in it for a live one too.
    if len(lines) > 4 and lines[3].strip() and lines[4].strip():
        socket_lock = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock"
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(socket_lock.read_text().split()[0]) == pid:
                socket_lock.unlink()
    waited = time.monotonic() - started
    # Said before it is done: a process killed after the removal (a server stopped while it
    # revives postgres) would leave the next one nothing to report.
    log.warning(
        "embedded PostgreSQL under %s: %s had died (%s); removing its stale lock files%s",
        pgdata,
        _named(pid),
        why,
        f" (waited {waited:.1f} s for its processes to exit)" if waited >= 0.1 else "",
    )
    (pgdata / POSTMASTER_PID).unlink(missing_ok=True)
    return True


def _pgserver_lock() -> Any:
    from pgserver.postgres_server import PostgresServer  # noqa: PLC0415 - heavy, embedded only

    return PostgresServer._lock


def _prune(pgdata: Path) -> None:
    handles = pgdata / PGSERVER_HANDLES
    with contextlib.suppress(FileNotFoundError, ValueError):
        pids = json.loads(handles.read_text())
        alive = [pid for pid in pids if _alive(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def prune_dead_handles(pgdata: Path) -> None:
    """Forget processes that died without letting go (kill -9), so the last one out stops it."""
    with _pgserver_lock():  # another process may be adding itself to the list
        _prune(pgdata)


def prepare(pgdata: Path, wait: float = START_WAIT) -> bool:
    """Before pgserver opens pgdata: forget dead users, clear a dead postmaster (if there was).

    Waits, at most `wait` seconds, for another process's start (initdb, say) to finish first.
    """
    lock = _pgserver_lock()
    path = os.fsdecode(lock.path)
    if not lock.acquire(blocking=False):
        log.info(
            "embedded PostgreSQL under %s: waiting for another start to finish (%s)", pgdata, path
        )
        if not lock.acquire(timeout=wait):
            lock._do_close()  # a failed acquire leaves the lock file open
            msg = f"another process has held pgserver's start lock {path} for {wait:.0f} s"
            raise StartBlocked(msg)
    try:
        _prune(pgdata)
        return _clear_dead_postmaster(pgdata)
    finally:
        lock.release()


def ensure_running(server: Any) -> bool:
    """Start an embedded server again; whether a dead postmaster's files were cleared first."""
    with server._lock:  # pgserver's own lock against concurrent starts
        cleared = _clear_dead_postmaster(Path(server.pgdata))
        server.ensure_postgres_running()
        return cleared


def release(server: Any) -> None:
    """Let go of an embedded server, stopping it if no other live process uses it."""
    # pgserver stops the server only when this process is the last one listed: processes
    # killed with -9 must leave the list first.
    prune_dead_handles(Path(server.pgdata))
    server.cleanup()  # takes the lock itself (not reentrant: closing it would drop ours)
