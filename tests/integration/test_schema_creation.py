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
