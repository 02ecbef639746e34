"""Many aggregates loaded at once: two statements per chunk instead of two per aggregate.

A strategy followed by 10,000 users has 10,000 books. Loaded one by one (the repository's
snapshot select, then its events select) they took ~5 s after a restart, longer than an
answer may wait, so the strategy's first order was a 503. Here the latest snapshots of a
chunk of books come in one statement and every event after them in another.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.utils import resolve_topic
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier

from ledger.overrides.aggregates import Replay, direct_replay

CHUNK = 1000  # books per pair of statements: their rows are held while decoded

_SNAPSHOTS = (
    "SELECT DISTINCT ON (originator_id) originator_id, originator_version, topic, state"
    " FROM {0} WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version DESC"
)
# One index range per book (a merge join instead read the whole primary key: ~1 s a chunk).
# Each row names its book by its place in the chunk: an int, not a UUID object to build.
_EVENTS = (
    "SELECT v.n - 1, e.originator_version, e.topic, e.state"
    " FROM unnest(%s::uuid[], %s::bigint[]) WITH ORDINALITY AS v(id, after, n) CROSS JOIN LATERAL"
    " (SELECT * FROM {0} AS e WHERE e.originator_id = v.id AND e.originator_version > v.after"
    " ORDER BY e.originator_version) AS e"
)


def _table(recorder: PostgresAggregateRecorder, statement: str) -> Composed:
    schema, table = recorder.datastore.schema, recorder.events_table_name
    name = Identifier(schema, table) if schema else Identifier(table)
    return SQL(statement).format(name)


def _chunks(ids: Sequence[UUID]) -> Iterator[Sequence[UUID]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


Row = tuple[UUID, int, str, bytes]


def _fetch(
    app: Application[UUID], chunk: Sequence[UUID]
) -> tuple[list[Row], list[tuple[int, int, str, bytes]]]:
    """A chunk's latest snapshots, and its events after them: one connection, one transaction."""
    events, snapshots = app.events.recorder, app.snapshots and app.snapshots.recorder
    assert isinstance(events, PostgresAggregateRecorder)
    with (
        events.datastore.get_connection() as conn,
        conn.transaction(),
        conn.cursor(row_factory=tuple_row) as c,
    ):
        # The planner's guess of events per book is thousands of times too high: JIT
        # compiling for it took longer (~130 ms) than the statement.
        c.execute("SET LOCAL jit = off")
        # Binary results: a state's bytes as they are, not as hex text to decode (a chunk of
        # 1,000 books of 15 events: ~45 ms instead of ~75, medians of six).
        taken: list[Row] = []
        if isinstance(snapshots, PostgresAggregateRecorder):
            # The factory builds both recorders on one datastore: one database, one schema.
            c.execute(_table(snapshots, _SNAPSHOTS), (list(chunk),), binary=True)
            taken = c.fetchall()
        version = {row[0]: row[1] for row in taken}  # a snapshot's version is its aggregate's
        after = [version.get(i, 0) for i in chunk]
        c.execute(_table(events, _EVENTS), (list(chunk), after), binary=True)
        return taken, c.fetchall()


def load_many(app: Application[UUID], ids: Sequence[UUID]) -> dict[UUID, Any]:
    """The aggregates with these ids, as the repository would load each one."""
    mapper = app.mapper

    def event(row: Row) -> Any:  # an aggregate's event: it mutates
        return mapper.to_domain_event(StoredEvent(*row))

    # Events of @event methods replay straight from their decoded state (overrides/aggregates).
    plain = mapper.compressor is None and mapper.cipher is None
    replays: dict[str, Replay | None] = {}

    def replay(topic: str) -> Replay | None:
        if topic not in replays:
            replays[topic] = direct_replay(resolve_topic(topic)) if plain else None
        return replays[topic]

    loaded: dict[UUID, Any] = {}
    for chunk in _chunks(ids):
        taken, rows = _fetch(app, chunk)
        start = {row[0]: event(row).mutate(None) for row in taken}
        for place, version, topic, state in rows:
            aggregate_id = chunk[place]
            aggregate = start.get(aggregate_id)
            direct = None if aggregate is None else replay(topic)
            if direct is None:
                start[aggregate_id] = event((aggregate_id, version, topic, state)).mutate(aggregate)
            else:
                direct(aggregate, version, mapper.transcoder.decode(state))
        for aggregate_id in chunk:
            if start.get(aggregate_id) is None:
                msg = f"Aggregate {aggregate_id!r} not found."
                raise AggregateNotFoundError(msg)
        loaded.update(start)
    return loaded
