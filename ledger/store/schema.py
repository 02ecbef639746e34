"""Table creation that processes starting at once on one store do one after another."""

from __future__ import annotations

from eventsourcing.postgres import PostgresRecorder


class OneCreatorAtATime(PostgresRecorder):
    """Creates a recorder's tables while holding the store's advisory lock for its schema.

    eventsourcing's `create_table` is not safe to run concurrently: two processes creating the
    same composite type collide on `pg_type`, and two replacing the same function fail with
    "tuple concurrently updated". `ledger serve` starts its writers, workers and projector at
    once, and two servers may share a store, so every creation waits for the one before it.
    """

    def create_table(self) -> None:
        """Create the tables (as eventsourcing does) with no other creator on this schema."""
        key = f"ledger tables {self.datastore.schema or 'public'}"
        # A session lock on a connection of its own: the creation runs in several
        # transactions on other connections, and a killed creator's lock dies with its session.
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
            try:
                super().create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
