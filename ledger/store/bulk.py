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
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier

CHUNK = 1000  # books per pair of statements: their rows are held while decoded

_SNAPSHOTS = (
    "SELECT DISTINCT ON (originator_id) originator_id, originator_version, topic, state"
    " FROM {0} WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version DESC"
)
# One index range per book (a merge join instead read the whole primary key: ~1 s a chunk).
_EVENTS = (
    "SELECT e.originator_id, e.originator_version, e.topic, e.state"
    " FROM unnest(%s::uuid[], %s::bigint[]) AS v(id, after) CROSS JOIN LATERAL"
    " (SELECT * FROM {0} AS e WHERE e.originator_id = v.id AND e.originator_version > v.after"
    " ORDER BY e.originator_version) AS e"
)


def _table(recorder: PostgresAggregateRecorder, statement: str) -> Composed:
    schema, table = recorder.datastore.schema, recorder.events_table_name
    name = Identifier(schema, table) if schema else Identifier(table)
    return SQL(statement).format(name)


def _rows(recorder: PostgresAggregateRecorder, statement: Composed, params: Any) -> list[Any]:
    with (
        recorder.datastore.get_connection() as conn,
        conn.transaction(),
        conn.cursor(row_factory=tuple_row) as c,
    ):
        # The planner's guess of events per book is thousands of times too high: JIT
        # compiling for it took longer (~130 ms) than the statement.
        c.execute("SET LOCAL jit = off")
        c.execute(statement, params)
        return c.fetchall()


def _chunks(ids: Sequence[UUID]) -> Iterator[Sequence[UUID]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def load_many(app: Application[UUID], ids: Sequence[UUID]) -> dict[UUID, Any]:
    """The aggregates with these ids, as the repository would load each one."""
    events = app.events.recorder
    snapshots = app.snapshots.recorder if app.snapshots is not None else None
    assert isinstance(events, PostgresAggregateRecorder)
    mapper = app.mapper

    def event(row: tuple[UUID, int, str, bytes]) -> Any:  # an aggregate's event: it mutates
        return mapper.to_domain_event(StoredEvent(*row))

    loaded: dict[UUID, Any] = {}
    for chunk in _chunks(ids):
        start: dict[UUID, Any] = {}
        if isinstance(snapshots, PostgresAggregateRecorder):
            for row in _rows(snapshots, _table(snapshots, _SNAPSHOTS), (list(chunk),)):
                start[row[0]] = event(row).mutate(None)
        after = [start[i].version if i in start else 0 for i in chunk]
        for row in _rows(events, _table(events, _EVENTS), (list(chunk), after)):
            start[row[0]] = event(row).mutate(start.get(row[0]))
        for aggregate_id in chunk:
            if start.get(aggregate_id) is None:
                msg = f"Aggregate {aggregate_id!r} not found."
                raise AggregateNotFoundError(msg)
        loaded.update(start)
    return loaded
