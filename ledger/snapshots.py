"""Snapshots of books, taken from memory: no reload from the store to take them."""

from __future__ import annotations

import copy
import logging
from typing import Any
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent

from ledger.domain import Roster
from ledger.store.factory import SnapshotRecorder

log = logging.getLogger(__name__)

# The roster gains an event for every change that adds books: onboarding users one request at
# a time left 20,000 events, which every process replayed at its start (0.41 s; it grows
# linearly). Its snapshot holds every book, so it is taken whenever the roster has grown by a
# tenth since the last one: at most a tenth of its events are replayed, and its snapshots add
# up to ~11 times the last one's size.
ROSTER_FIRST = 1000  # roster version of its first snapshot


def _roster_versions() -> frozenset[int]:
    versions, version = set(), ROSTER_FIRST
    while version < 2**63:
        versions.add(version)
        version += version // 10  # a tenth more
    return frozenset(versions)


ROSTER_SNAPSHOTS = _roster_versions()  # the roster versions a snapshot is taken at
ROSTER, UNKNOWN = 0, -1  # in due_snapshots, for an event class: the roster's, not yet known


def due(aggregate_id: UUID, version: int, interval: int) -> bool:
    """Whether a snapshot is due at `version`: one every `interval` versions, at an offset
    the id sets. Books that move together (every follower of a strategy) then snapshot a few
    at a time: in step, 10,000 of them all came due in one batch, whose order took 3.1 s
    instead of 0.45."""
    return (version + aggregate_id.int % interval) % interval == 0


def due_snapshots(app: Application[Any], processing_event: ProcessingEvent[Any]) -> list[Any]:
    """Snapshots of the aggregates whose new version is due (see due())."""
    # eventsourcing would reload each aggregate from the store to snapshot it; the
    # aggregate in memory is that same state, so it is snapshotted as it is.
    if app.snapshots is None:
        return []
    aggregates = processing_event.aggregates
    taken: dict[Any, Any] = {}
    # An event class belongs to one aggregate class (eventsourcing makes each aggregate's
    # own; a subclass of Book would share Book.book's, so its interval would be Book's): its
    # interval is looked up once per class, and the aggregates dict, keyed by UUIDs whose
    # hashing is Python code, is read again only for the events that come due.
    intervals: dict[type, int | None] = {}  # event class -> interval; ROSTER: the roster's
    for domain_event in processing_event.events:
        kind = type(domain_event)
        interval = intervals.get(kind, UNKNOWN)
        if interval == UNKNOWN:
            owner = aggregates.get(domain_event.originator_id)
            if owner is None:
                continue  # not this batch's to snapshot
            interval = intervals[kind] = (
                ROSTER
                if isinstance(owner, Roster)
                else app.snapshotting_intervals.get(type(owner)) or None
            )
        if interval is None:
            continue
        aggregate_id, version = domain_event.originator_id, domain_event.originator_version
        if interval == ROSTER:
            is_due = version in ROSTER_SNAPSHOTS
        else:
            is_due = due(aggregate_id, version, interval)
        if is_due and (aggregate := aggregates.get(aggregate_id)) is not None:
            taken[aggregate_id] = aggregate
    snapshots = []
    for aggregate in taken.values():
        snapshot = type(aggregate).Snapshot.take(aggregate)
        # take() copies the aggregate's attributes but not the dicts and lists in them; the
        # next batch may change those before this snapshot is stored. The roster's list holds
        # tuples of names, which never change: a copy of the list will do (a deep copy of
        # 90,000 books would hold the writer up).
        copied = _shallow if isinstance(aggregate, Roster) else copy.deepcopy
        snapshot.state.update({k: copied(v) for k, v in snapshot.state.items()})
        snapshots.append(snapshot)
    return snapshots


def _shallow(value: Any) -> Any:
    """A list copied, its items shared; any other value as it is (the roster's are immutable)."""
    return list(value) if isinstance(value, list) else value


def put_snapshots(app: Application[Any], snapshots: list[Any]) -> None:
    """Store snapshots; a failure only costs longer loads, so it is logged, not raised."""
    if not snapshots or app.snapshots is None:
        return
    try:
        app.snapshots.put(snapshots)
    except Exception as failure:
        log.warning("snapshot not saved (%s); books still load from their events", failure)


def catch_up_roster(app: Application[Any], roster: Roster | None) -> int | None:
    """Snapshot the roster now if reading it replayed over a tenth of its events; its version."""
    # A store from before roster snapshots (or whose last one failed to save) would be read
    # whole at every start until it grows to the next version in ROSTER_SNAPSHOTS. In a store
    # snapshotted as it grew, a start replays at most a tenth: nothing is taken.
    if roster is None or app.snapshots is None or roster.version < ROSTER_FIRST:
        return None
    recorder = app.snapshots.recorder
    assert isinstance(recorder, SnapshotRecorder), "the ledger's own persistence module"
    replayed = roster.version - recorder.last_version(roster.id)
    if replayed <= roster.version // 10:
        return None
    snapshot = type(roster).Snapshot.take(roster)
    snapshot.state.update({k: _shallow(v) for k, v in snapshot.state.items()})
    put_snapshots(app, [snapshot])
    log.info(
        "roster snapshot taken at version %d (%d events past the last one)",
        roster.version,
        replayed,
    )
    return roster.version


def save_snapshots(app: Application[Any], processing_event: ProcessingEvent[Any]) -> None:
    """Take and store the snapshots due after a save."""
    try:
        snapshots = due_snapshots(app, processing_event)
    except Exception as failure:
        log.warning("snapshot not taken (%s); books still load from their events", failure)
        return
    put_snapshots(app, snapshots)
