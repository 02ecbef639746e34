"""Processes starting at once on one store create its tables without tripping over each other."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from psycopg import sql

from ledger.application import Ledger
from ledger.store import schema as schema_module
from ledger.store.database import Database
from projections.runner import open_view

STARTERS = 6  # the processes of `ledger serve`: writers, workers and a projector
ROUNDS = 4


def start_at_once(starts: list[Callable[[], Any]]) -> list[BaseException]:
    """Run each start in its own thread, released together; the errors they raised."""
    barrier = threading.Barrier(len(starts))
    errors: list[BaseException] = []
    made: list[Any] = []

    def run(start: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            made.append(start())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(start,)) for start in starts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for thing in made:
        (thing.close if isinstance(thing, Ledger) else thing.datastore.close)()
    return errors


def test_ledgers_and_views_start_at_once_on_a_new_and_on_an_existing_store(
    database: Database,
) -> None:
    env = database.eventsourcing_env()
    with database.connect() as conn:  # a new store: not even its schema exists
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(database.schema)))

    def ledger() -> Ledger:
        database.ensure_schema()
        return Ledger(env=env)

    def view() -> Any:
        database.ensure_schema()
        return open_view(env)

    for _ in range(ROUNDS):  # the first round creates everything, the others find it
        starts = [ledger if n % 2 else view for n in range(STARTERS)]
        assert start_at_once(starts) == []
    ledger = Ledger(env=env)
    try:
        assert ledger.last_sequence() == 0
    finally:
        ledger.close()


def test_a_creation_that_waits_too_long_says_so(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema_module, "CREATION_WAIT", 1)
    with database.connect() as holder:  # another process, creating for ever
        holder.execute(schema_module.CREATION_LOCK, (schema_module.creation_key(database.schema),))
        with pytest.raises(RuntimeError, match="creating the ledger's tables"):
            Ledger(env=database.eventsourcing_env())


def test_a_start_on_an_existing_store_waits_for_no_table_lock(database: Database) -> None:
    env = database.eventsourcing_env()
    Ledger(env=env).close()
    open_view(env).datastore.close()
    with database.connect() as conn:
        tables = [
            sql.Identifier(database.schema, name)
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (database.schema,)
            ).fetchall()
        ]
    started = threading.Event()

    def start() -> None:
        Ledger(env=env).close()
        open_view(env).datastore.close()
        started.set()

    # Every table held as an autovacuum holds it: creation statements that lock their table
    # (CREATE INDEX, ALTER TABLE) would wait until this transaction ends.
    with database.connect() as vacuum, vacuum.transaction():
        for table in tables:
            vacuum.execute(sql.SQL("LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE").format(table))
        starter = threading.Thread(target=start, daemon=True)
        starter.start()
        starter.join(timeout=30)
        assert started.is_set(), "a start waited for a table lock"


def test_what_a_start_finds_missing_it_creates_again(database: Database) -> None:
    env = database.eventsourcing_env()
    open_view(env).datastore.close()
    orders, index = sql.Identifier(database.schema, "view_orders"), "view_orders_strategy"
    with database.connect() as conn:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(database.schema, index)))
        conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN price").format(orders))
    open_view(env).datastore.close()
    with database.connect() as conn:
        found = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL, count(*) FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = 'view_orders' AND column_name = 'price'",
            (f'"{database.schema}"."{index}"', database.schema),
        ).fetchone()
    assert found == (True, 1)
