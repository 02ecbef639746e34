"""Table creation that processes starting at once on one store do one after another."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from eventsourcing.postgres import PostgresRecorder
from psycopg.rows import tuple_row
from psycopg.sql import Composable

# Held while a schema or a recorder's tables are created; ends with its connection's session.
CREATION_LOCK = "SELECT pg_advisory_lock(hashtext(%s))"
CREATION_WAIT = 60  # seconds a process waits for another's creation before it gives up


def creation_key(schema: str) -> str:
    """The advisory lock's key for creating things in `schema`."""
    return f"ledger tables {schema or 'public'}"


def take_creation_lock(conn: psycopg.Connection[Any], schema: str) -> None:
    """Wait (at most CREATION_WAIT s) for the lock, held until the session ends."""
    # Its own bound, not PGOPTIONS' statement_timeout: a creator's DDL may wait for the
    # writers' and the projection's table locks while a busy server runs.
    conn.execute(f"SET statement_timeout = '{CREATION_WAIT}s'")
    try:
        conn.execute(CREATION_LOCK, (creation_key(schema),))
    except psycopg.errors.QueryCanceled as waited:
        msg = (
            f"another process has been creating the ledger's tables in schema {schema!r}"
            f" for {CREATION_WAIT} s; try again"
        )
        raise RuntimeError(msg) from waited
    conn.execute("SET statement_timeout = DEFAULT")


class OneCreatorAtATime(PostgresRecorder):
    """Creates a recorder's tables while holding the store's advisory lock for its schema.

    eventsourcing's `create_table` is not safe to run concurrently: two processes creating the
    same composite type collide on `pg_type`, and two replacing the same function fail with
    "tuple concurrently updated". `ledger serve` starts its writers, workers and projector at
    once, and two servers may share a store, so every creation waits for the one before it.
    """

    def create_table(self) -> None:
        """Create the tables (as eventsourcing does) with no other creator on this schema."""
        pool = self.datastore.pool
        kwargs: dict[str, Any] = dict(pool.kwargs) if isinstance(pool.kwargs, dict) else {}
        kwargs.setdefault("connect_timeout", max(1, round(pool.timeout)))  # the pool's bound
        if pool.get_password_func is not None:
            kwargs["password"] = pool.get_password_func()
        # A session lock on a connection of its own, not the pool's (which would keep it as
        # one more idle connection): the creation runs in several transactions on the pool's
        # connections, and a killed creator's lock dies with its session.
        with psycopg.connect(str(pool.conninfo), autocommit=True, **kwargs) as conn:
            take_creation_lock(conn, self.datastore.schema)
            statements = self.sql_create_statements
            self.sql_create_statements = [s for s in statements if needed(conn, s)]
            try:
                super().create_table()  # the lock ends with the connection
            finally:
                self.sql_create_statements = statements


_QUALIFIED = r'("[^"]+"\.)?("[^"]+"|\w+)'
_INDEX = re.compile(rf"\s*CREATE (?:UNIQUE )?INDEX IF NOT EXISTS {_QUALIFIED} ON {_QUALIFIED} ")
_ADD = re.compile(rf"\s*ALTER TABLE ({_QUALIFIED}) (ADD COLUMN IF NOT EXISTS .*)", re.DOTALL)
_COLUMN = re.compile(r'\s*ADD COLUMN IF NOT EXISTS ("[^"]+"|\w+) [^,]*\Z')


def needed(conn: psycopg.Connection[Any], statement: Composable) -> bool:
    """Whether a creation statement would change anything: an index or the columns it adds
    may exist already. Run anyway, each takes a lock on its table (ALTER TABLE the strongest)
    and waits behind an autovacuum of it until PostgreSQL cancels that (1 s): two such waits
    were 2 of the 3.5 s a restart took after a replay. Unknown statements always run."""
    text = statement.as_string(conn)
    if index := _INDEX.match(text):
        name = (index[3] or "") + index[2]  # the index lives in its table's schema
        return _value(conn, "SELECT to_regclass(%s) IS NULL", name) is not False
    if add := _ADD.fullmatch(text):
        parts = [_COLUMN.fullmatch(part) for part in add[4].split(",")]
        if not all(parts):
            return True  # more than columns added, or a default with a comma: run it
        columns = {p[1].strip('"') for p in parts if p}
        with conn.cursor(row_factory=tuple_row) as cursor:
            existing = cursor.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s)"
                " AND attnum > 0 AND NOT attisdropped",
                (add[1],),
            ).fetchall()
        return not columns <= {row[0] for row in existing}
    return True


def _value(conn: psycopg.Connection[Any], query: str, param: str) -> Any:
    with conn.cursor(row_factory=tuple_row) as cursor:
        row = cursor.execute(query, (param,)).fetchone()
    return row[0] if row else None
