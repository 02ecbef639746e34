"""Write tests/data/old_store.json: the stored rows of a store the pre-quantity code wrote."""

# Run with the code before quantities and prices, never with this tree's: it was a copy of the
# tree then (commit 101d068 and its uncommitted users work), `rsync -a --exclude .venv ...`:
#   cd /tmp/oldcode && PYTHONPATH=. /work/main/.venv/bin/python \
#       /work/main/tests/data/make_old_store.py        (it writes beside itself)

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pgserver
import psycopg
from psycopg import sql

from ledger.answers import OrderRequest
from ledger.application import Ledger
from ledger.domain import Position
from ledger.settings import Settings
from ledger.store.database import Database

OUT = Path(__file__).with_name("old_store.json")
PROFILES = {
    "Holland Proctor": {"STRATEGY_A": ["GRASIM", "INFY"], "STRATEGY_B": ["MINDA", "ACC"]},
    "Kamryn Li": {"STRATEGY_B": ["ACC"], "STRATEGY_D": ["NTPC"]},
}
LATER = {
    "Holland Proctor": {"STRATEGY_A": ["GRASIM", "INFY"], "STRATEGY_B": ["MINDA", "ACC", "NTPC"]},
    "Kamryn Li": {"STRATEGY_B": ["ACC"]},
}
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def orders() -> list[OrderRequest]:
    """The worked example, positions left open, and enough orders for a book snapshot."""
    plan = [
        ("STRATEGY_A", "GRASIM", "BUY"),
        ("STRATEGY_B", "MINDA", "BUY"),
        ("STRATEGY_A", "MINDA", "BUY"),
        ("STRATEGY_A", "MINDA", "SELL"),
        ("STRATEGY_B", "MINDA", "SELL"),
        ("STRATEGY_D", "NTPC", "BUY"),
        ("STRATEGY_B", "ACC", "BUY"),
        ("STRATEGY_X", "ACC", "BUY"),
    ]
    # Holland Proctor's STRATEGY_A book reaches version 100 (a snapshot), then opens INFY.
    plan += [("STRATEGY_A", "INFY", side) for _ in range(49) for side in ("BUY", "SELL")]
    plan += [("STRATEGY_A", "INFY", "BUY")]
    return [
        OrderRequest(s, i, Position(p), f"old-{n}", START + timedelta(seconds=n))
        for n, (s, i, p) in enumerate(plan, 1)
    ]


def rows(conn: psycopg.Connection[tuple[object, ...]], schema: str, table: str) -> list[object]:
    """A table's stored rows, in the order they were written."""
    order = "notification_id" if table.endswith("events") else "originator_id, originator_version"
    query = sql.SQL(
        "SELECT originator_id::text, originator_version, topic, convert_from(state, 'UTF8')"
        " FROM {}.{} ORDER BY " + order
    ).format(sql.Identifier(schema), sql.Identifier(table))
    return [list(r) for r in conn.execute(query)]


def main() -> None:
    """Write the store with this interpreter's ledger package and dump its rows."""
    base = Path(tempfile.mkdtemp(prefix="old-store-"))
    base.chmod(0o755)
    server = pgserver.get_server(base / "pg", cleanup_mode="stop")
    try:
        url = str(server.get_uri())
        settings = Settings(database_url=url, db_schema="old", data_dir=base, log_dir=base)
        database = Database.open(settings)
        with Ledger(env=database.eventsourcing_env()) as ledger:
            ledger.import_profiles(PROFILES, "digest-1")
            outcomes = ledger.place_orders(orders())
            ledger.import_profiles(LATER, "digest-2")
            answers = {o.answer.order_id: orjson.loads(orjson.dumps(o.answer)) for o in outcomes}
        with psycopg.connect(url) as conn:
            dump = {
                "made_by": "tests/data/make_old_store.py, with the pre-quantity code",
                "events": rows(conn, "old", "ledger_events"),
                "snapshots": rows(conn, "old", "ledger_snapshots"),
                "answers": answers,
            }
        database.close()
        OUT.write_bytes(orjson.dumps(dump, option=orjson.OPT_INDENT_2) + b"\n")
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
