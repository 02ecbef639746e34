"""A store written before quantities opens and serves unchanged (tests/data/old_store.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from psycopg import sql

from ledger.amounts import closed_numbers
from ledger.answers import OrderRequest
from ledger.application import Ledger
from ledger.domain import Book, Position
from ledger.store.database import Database

OLD = json.loads((Path(__file__).parents[1] / "data" / "old_store.json").read_text())
HOLLAND, KAMRYN = "Holland Proctor", "Kamryn Li"


@pytest.fixture
def old_store(database: Database, make_ledger: Any, database_url: str) -> Database:
    """The test's schema holding exactly the rows the previous code stored."""
    make_ledger().close()  # creates the tables
    with psycopg.connect(database_url) as conn:
        for table, rows in (
            ("ledger_events", OLD["events"]),
            ("ledger_snapshots", OLD["snapshots"]),
        ):
            insert = sql.SQL(
                "INSERT INTO {}.{} (originator_id, originator_version, topic, state)"
                " VALUES (%s, %s, %s, convert_to(%s, 'UTF8'))"
            ).format(sql.Identifier(database.schema), sql.Identifier(table))
            with conn.cursor() as curs:
                curs.executemany(insert, rows)
    return database


def test_old_orders_answer_as_before_with_quantity_1_at_no_price(
    old_store: Database, make_ledger: Any
) -> None:
    ledger: Ledger = make_ledger()
    assert len(OLD["answers"]) == 107
    for order_id, before in OLD["answers"].items():
        answer = ledger.get_order(order_id)
        assert answer is not None
        assert orjson.loads(orjson.dumps(answer)) == {  # as the service answers it
            **before,
            "quantity": 1,
            "price": None,
        }
    # A SELL stored before they recorded whether it gave a QUANTITY: a retry with or without
    # one is the same order, as before (it cannot be told).
    order_id, sold = next((i, a) for i, a in OLD["answers"].items() if a["position"] == "SELL")
    for given in (False, True):
        retry = OrderRequest(
            sold["strategy"], sold["instrument"], Position.SELL, order_id, quantity_given=given
        )
        assert not ledger.place_orders([retry])[0].reused_id


def test_old_books_load_as_quantity_1_and_old_positions_close(
    old_store: Database, make_ledger: Any
) -> None:
    ledger: Ledger = make_ledger()
    # Loaded from the old snapshot (version 101) and the events after it.
    book_a = ledger.book(Book.create_id(HOLLAND, "STRATEGY_A"))
    assert book_a.open == {"GRASIM": "old-1", "INFY": "old-107"}
    assert book_a.multiplier == "1"
    assert book_a.sizes == {
        "GRASIM": {"order_quantity": 1, "quantity": "1", "price": None},
        "INFY": {"order_quantity": 1, "quantity": "1", "price": None},
    }
    dropped = ledger.book(Book.create_id(KAMRYN, "STRATEGY_D"))
    assert (dropped.active, dropped.open) == (False, {"NTPC": "old-6"})
    outcomes = ledger.place_orders(
        [
            OrderRequest("STRATEGY_A", "INFY", Position.SELL, "new-1", price=None),
            OrderRequest("STRATEGY_A", "GRASIM", Position.SELL, "new-2", quantity=2),
            OrderRequest("STRATEGY_A", "GRASIM", Position.SELL, "new-3", quantity_given=True),
            OrderRequest("STRATEGY_B", "ACC", Position.SELL, "new-4", quantity=3),
            OrderRequest("STRATEGY_D", "NTPC", Position.SELL, "new-5"),
            OrderRequest("STRATEGY_A", "INFY", Position.BUY, "new-6", quantity=4),
        ]
    )
    answers = [o.answer for o in outcomes]
    assert [a.accepted_for for a in answers] == [
        [HOLLAND],
        [],
        [HOLLAND],
        [],
        [KAMRYN],
        [HOLLAND],
    ]
    assert answers[1].rejected_for == [{"user": HOLLAND, "reason": "QUANTITY_MISMATCH"}]
    assert {r["reason"] for r in answers[3].rejected_for} == {"QUANTITY_MISMATCH"}
    ledger.forget()
    reloaded = ledger.book(Book.create_id(HOLLAND, "STRATEGY_A"))
    assert reloaded.open == {"INFY": "new-6"}
    assert reloaded.sizes["INFY"] == {"order_quantity": 4, "quantity": "4", "price": None}
    closed = [
        e
        for e in ledger.repository.event_store.get(Book.create_id(KAMRYN, "STRATEGY_D"))
        if type(e).__name__ == "PositionClosed"
    ]
    assert [closed_numbers(e) for e in closed] == [("1", None, None)]
