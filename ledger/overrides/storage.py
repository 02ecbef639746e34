"""Every use of a library's private parts (eventsourcing, pgserver, pydantic-settings), here.

Each function here leans on something the libraries do not promise to keep. `missing()`
lists what an upgrade has moved, so a test fails here rather than a running projector.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import BaseAggregate
from eventsourcing.persistence import Recording, Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import ProjectionRunner
from psycopg import Cursor
from psycopg.rows import DictRow
from pydantic_settings import BaseSettings, EnvSettingsSource

# (owner, attribute, parameters it must accept): what the functions below rely on.
RELIED_ON: list[tuple[Any, str, tuple[str, ...]]] = [
    (BaseAggregate, "__base_init__", ("originator_id", "originator_version", "timestamp")),
    (Application, "_record", ("processing_event",)),
    (Application, "_notify", ("recordings",)),
    (ProjectionRunner, "_construct_env", ("name", "env")),
    (ProjectionRunner, "_process_events_loop", ("subscription", "projection", "is_stopping")),
    (PostgresTrackingRecorder, "_insert_tracking", ("curs", "tracking")),
    (EnvSettingsSource, "_load_env_vars", ()),
]
# Instance attributes, seen only on live objects: (class path, attribute).
RELIED_ON_INSTANCES = [
    ("eventsourcing.persistence.Subscription", "_notifications"),
    ("eventsourcing.persistence.Subscription", "_notifications_index"),
    ("eventsourcing.persistence.Subscription", "_notifications_queue"),
    ("eventsourcing.projection.ProjectionRunner", "_thread_error"),
    ("eventsourcing.persistence.ListenNotifySubscription", "_select_limit"),
]
PGSERVER_HANDLES = ".handle_pids.json"  # pgserver's list of processes using a server


def missing() -> list[str]:
    """What an upgrade has moved: class attributes gone or with other parameters."""
    from pgserver.postgres_server import PostgresServer  # noqa: PLC0415 - heavy, embedded only

    problems = [] if hasattr(PostgresServer, "_lock") else ["PostgresServer._lock is gone"]
    for owner, name, parameters in [
        *RELIED_ON,
        (PostgresServer, "ensure_postgres_running", ()),
        (PostgresServer, "cleanup", ()),
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


def projection_env(name: str, env: Mapping[str, str]) -> Any:
    """The environment a ProjectionRunner builds its view recorder from."""
    return ProjectionRunner._construct_env(name, dict(env))


def insert_tracking(
    recorder: PostgresTrackingRecorder, curs: Cursor[DictRow], tracking: Tracking
) -> None:
    """Record a tracking position inside the caller's transaction."""
    recorder._insert_tracking(curs, tracking)


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
        try:
            while True:
                if held is None:
                    try:
                        held = next(subscription)  # blocks until an event comes, or a stop
                    except StopIteration:
                        return
                batch, total, held = [held], cost(held[0]), None
                try:
                    while len(batch) < this.batch and (
                        pages._notifications_index < len(pages._notifications)
                        or not pages._notifications_queue.empty()
                    ):
                        item = next(subscription)
                        size = cost(item[0])
                        if total + size > budget:
                            held = item
                            break
                        batch.append(item)
                        total += size
                except StopIteration:
                    held = None  # stopping: what was taken is still processed, then no more
                projection.process_events(batch)
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


# pgserver


def prune_dead_handles(pgdata: Path) -> None:
    """Forget processes that died without letting go (kill -9), so the last one out stops it."""
    handles = pgdata / PGSERVER_HANDLES
    with contextlib.suppress(FileNotFoundError, ValueError):
        pids = json.loads(handles.read_text())
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def ensure_running(server: Any) -> None:
    """Start an embedded server again whose postmaster has died."""
    with server._lock:  # pgserver's own lock against concurrent starts
        server.ensure_postgres_running()
