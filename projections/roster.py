"""The roster read model: every user's strategies and instruments, kept from the book events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier

from ledger.amounts import multiplier_of
from ledger.domain import Book
from ledger.user_answers import Entry, entry

TABLE = "view_books"
TAKEN_UP: Any = Book.StrategyTakenUp  # type: ignore[attr-defined]
CHANGED: Any = Book.InstrumentsChanged  # type: ignore[attr-defined]
DROPPED: Any = Book.StrategyDropped  # type: ignore[attr-defined]
TOPICS = tuple(get_topic(cls) for cls in (TAKEN_UP, CHANGED, DROPPED))


def table(schema: str) -> Composed:
    """The roster table of a schema."""
    return SQL("{0}.{1}").format(Identifier(schema), Identifier(TABLE))


def create_statements(schema: str, positions: Composable) -> list[Composed]:
    """The table, and the indexes the GET /users and /strategies reads use."""
    books = table(schema)
    return [
        # user_name and strategy may be null in a row of the upsert below: such a row only
        # ever updates a book already there (its StrategyTakenUp was projected before).
        SQL(
            "CREATE TABLE IF NOT EXISTS {0} (book_id uuid PRIMARY KEY, user_name text,"
            " strategy text, instruments jsonb, active boolean NOT NULL, sequence bigint NOT NULL)"
        ).format(books),
        SQL("CREATE INDEX IF NOT EXISTS view_books_user ON {0} (user_name, strategy)").format(
            books
        ),
        SQL("CREATE INDEX IF NOT EXISTS view_books_strategy ON {0} (strategy, user_name)").format(
            books
        ),
        # Open positions counted per strategy without reading every user's.
        SQL("CREATE INDEX IF NOT EXISTS view_positions_strategy ON {0} (strategy)").format(
            positions
        ),
    ]


@dataclass
class _Row:
    user: str | None
    strategy: str | None
    instruments: Entry | None
    active: bool
    sequence: int


def _entry(domain_event: Any) -> Entry:
    # The profile file's form: the list, or {"instruments", "multiplier"} when not 1.
    return entry(list(domain_event.instruments), multiplier_of(domain_event))


class BookRows:
    """Book events folded into one row per book: the last state of each wins."""

    def __init__(self) -> None:
        self.rows: dict[UUID, _Row] = {}

    def __bool__(self) -> bool:
        return bool(self.rows)

    def add(self, domain_event: Any, sequence: int) -> None:
        """Fold one event; events of other kinds are ignored."""
        book_id = domain_event.originator_id
        row = self.rows.get(book_id)
        if isinstance(domain_event, TAKEN_UP):
            self.rows[book_id] = _Row(
                domain_event.user,
                domain_event.strategy,
                _entry(domain_event),
                True,
                sequence,
            )
        elif isinstance(domain_event, CHANGED):
            if row is None:
                self.rows[book_id] = row = _Row(None, None, None, True, sequence)
            row.instruments, row.active, row.sequence = (
                _entry(domain_event),
                True,
                sequence,
            )
        elif isinstance(domain_event, DROPPED):
            if row is None:
                self.rows[book_id] = row = _Row(None, None, None, False, sequence)
            row.active, row.sequence = False, sequence

    def params(self) -> tuple[list[Any], ...]:
        """The upsert's columns."""
        rows = list(self.rows.items())
        return (
            [book_id for book_id, _ in rows],
            [r.user for _, r in rows],
            [r.strategy for _, r in rows],
            [
                None if r.instruments is None else orjson.dumps(r.instruments).decode()
                for _, r in rows
            ],
            [r.active for _, r in rows],
            [r.sequence for _, r in rows],
        )


def upsert(schema: str) -> Composed:
    """One statement for a batch of book rows: new books inserted, known ones updated."""
    return SQL(
        "INSERT INTO {0} (book_id, user_name, strategy, instruments, active, sequence)"
        " SELECT id, u, s, i::jsonb, a, q FROM unnest(%b::uuid[], %b::text[], %b::text[],"
        " %b::text[], %b::boolean[], %b::bigint[]) AS t(id, u, s, i, a, q)"
        " ON CONFLICT (book_id) DO UPDATE SET"
        " user_name = coalesce(excluded.user_name, {0}.user_name),"
        " strategy = coalesce(excluded.strategy, {0}.strategy),"
        " instruments = coalesce(excluded.instruments, {0}.instruments),"
        " active = excluded.active, sequence = excluded.sequence"
    ).format(table(schema))


def write(curs: Cursor[DictRow], statement: Composed, rows: BookRows) -> None:
    """Write folded book rows (inside the caller's transaction, with its tracking record)."""
    if rows:
        curs.execute(statement, rows.params())


def stored_rows(app: Any, stop: int) -> BookRows:
    """The rows of every book event up to `stop`, read from the store (for a replay)."""
    recorder = app.recorder
    statement = SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM {0}.{1}"
        " WHERE notification_id <= %s AND topic = ANY(%s) ORDER BY notification_id"
    ).format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
    rows = BookRows()
    with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(statement, (stop, list(TOPICS)))
        for row in curs:
            notification = Notification(
                id=row["notification_id"],
                originator_id=row["originator_id"],
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=bytes(row["state"]),
            )
            rows.add(app.mapper.to_domain_event(notification), notification.id)
    return rows
