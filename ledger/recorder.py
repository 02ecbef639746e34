"""The Postgres recorder of the ledger: optimistic read checks and fail-fast inserts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier


class StaleRead(IntegrityError):
    """A book that a decision read has changed since it was loaded."""


class LedgerRecorder(PostgresApplicationRecorder):
    """Checks the versions of the books a batch read, inside the insert's table lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        table = SQL("{0}.{1}").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )
        self._versions_sql = SQL(
            "SELECT originator_id, max(originator_version) AS version FROM {0} "
            "WHERE originator_id = ANY(%s) GROUP BY originator_id"
        ).format(table)
        self._notification_sql = SQL(
            "SELECT originator_id, notification_id FROM {0} "
            "WHERE originator_id = ANY(%s) AND originator_version = 1"
        ).format(table)

    # No retry loop: the caller answers 503 within seconds and the client retries
    # with its ORDER_ID, which is safer than re-sending a commit of unknown outcome.
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return PostgresApplicationRecorder.insert_events.__wrapped__(  # type: ignore[no-any-return]
            self, stored_events, **kwargs
        )

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        expected: dict[UUID, int] | None = kwargs.get("expected_versions")
        if expected:
            # Take the writers' lock first so that nobody commits between check and insert.
            self._lock_table(curs)
            curs.execute(self._versions_sql, (list(expected),), prepare=True)
            found = {row["originator_id"]: row["version"] for row in curs.fetchall()}
            stale = [oid for oid, version in expected.items() if found.get(oid) != version]
            if stale:
                msg = f"{len(stale)} book(s) changed since read"
                raise StaleRead(msg)
        super()._insert_events(curs, stored_events, **kwargs)

    def first_notification_ids(self, originator_ids: Sequence[UUID]) -> dict[UUID, int]:
        """The notification id of each given aggregate's first event, if it exists."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._notification_sql, (list(originator_ids),), prepare=True)
            return {row["originator_id"]: row["notification_id"] for row in curs.fetchall()}

    def ping(self) -> None:
        """Raise unless the database answers."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute("SELECT 1")
