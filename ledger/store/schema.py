"""Table creation that processes starting at once on one store do one after another."""

from __future__ import annotations

from typing import Any

import psycopg
from eventsourcing.postgres import PostgresRecorder

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
            super().create_table()  # the lock ends with the connection
