"""Quantities, prices and multipliers over HTTP and in the books, on real PostgreSQL."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from ledger.application import Ledger
from ledger.domain import Book, Order

HOLLAND, KAMRYN = "Holland Proctor", "Kamryn Li"


def order(client: TestClient, body: dict[str, Any] | bytes) -> Any:
    if isinstance(body, bytes):
        return client.post("/order", content=body)
    return client.post("/order", json=body)


def served(client: TestClient) -> Ledger:
    """The app's own ledger (a second one would race the app for its tables)."""
    ledger: Ledger = client.app.state.services.ledger  # type: ignore[attr-defined]
    return ledger


def last_sequence(client: TestClient) -> int:
    value: int = client.get("/health").json()["sequence"]
    return value


def test_an_order_without_quantity_or_price_is_1_at_no_price(client: TestClient) -> None:
    answer = order(client, {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY"})
    assert answer.status_code == 200
    assert (answer.json()["quantity"], answer.json()["price"]) == (1, None)


def test_quantity_and_an_exact_price_are_answered(client: TestClient) -> None:
    raw = (
        b'{"strategy": "STRATEGY_B", "instrument": "ACC", "position": "BUY",'
        b' "quantity": 25, "price": 1.1, "order_id": "q1"}'
    )
    answer = order(client, raw)
    assert answer.status_code == 200
    body = answer.json()
    assert (body["quantity"], body["price"]) == (25, "1.1")
    assert body["accepted_for"] == [HOLLAND, KAMRYN]
    assert b'"price":"1.1"' in answer.content  # a string, never a float
    # The same ORDER_ID with the same order (the price spelled otherwise) is the first answer.
    again = order(client, raw.replace(b"1.1", b'"1.10"'))
    assert again.json() == body
    # With another quantity or price it is a different order.
    assert order(client, raw.replace(b"25", b"26")).status_code == 409
    assert order(client, raw.replace(b"1.1", b"1.2")).status_code == 409


def test_bad_values_are_422_and_write_nothing(client: TestClient) -> None:
    before = last_sequence(client)
    for more in ({"QUANTITY": 0}, {"PRICE": "-1"}, {"PRICE": 1.123456789}, {"QUANTITY": 10**10}):
        body = {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY", **more}
        answer = order(client, body)
        assert answer.status_code == 422
        assert set(answer.json()["fields"]) == set(more)
    assert last_sequence(client) == before


def test_a_sell_of_another_quantity_is_refused_and_one_without_closes_all(
    client: TestClient,
) -> None:
    acc = {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "ACC"}
    assert order(client, {**acc, "POSITION": "BUY", "QUANTITY": 5})
    mismatch = order(client, {**acc, "POSITION": "SELL", "QUANTITY": 4}).json()
    assert mismatch["RESPONSE"] == "REJECTED"
    assert mismatch["rejected_for"] == [
        {"user": HOLLAND, "reason": "QUANTITY_MISMATCH"},
        {"user": KAMRYN, "reason": "QUANTITY_MISMATCH"},
    ]
    exact = order(client, {**acc, "POSITION": "SELL", "QUANTITY": 5, "PRICE": "2"}).json()
    assert exact["accepted_for"] == [HOLLAND, KAMRYN]
    assert order(client, {**acc, "POSITION": "BUY", "QUANTITY": 7}).json()["RESPONSE"] == (
        "ACCEPTED"
    )
    closes = order(client, {**acc, "POSITION": "SELL"}).json()
    assert (closes["accepted_for"], closes["quantity"]) == ([HOLLAND, KAMRYN], 1)
    spec = client.get("/openapi.json").json()
    assert "QUANTITY_MISMATCH" in str(spec)


def test_a_retried_sell_must_ask_for_the_same_quantity_or_none_as_the_first(
    client: TestClient,
) -> None:
    # Without QUANTITY a SELL closes whatever is open; with QUANTITY 1 it must match the BUY.
    acc = {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "ACC"}
    for n, (first, other) in enumerate([({}, {"QUANTITY": 1}), ({"QUANTITY": 1}, {})]):
        assert order(client, {**acc, "POSITION": "BUY"}).json()["RESPONSE"] == "ACCEPTED"
        sell = {**acc, "POSITION": "SELL", "ORDER_ID": f"sell-{n}"}
        answer = order(client, {**sell, **first})
        assert answer.json()["accepted_for"] == [HOLLAND, KAMRYN]
        assert order(client, {**sell, **first}).json() == answer.json()
        again = order(client, {**sell, **other})
        assert again.status_code == 409
        assert again.json()["order"] == answer.json()  # the first answer, for reference
    # A BUY's QUANTITY 1 is its default: given or not, the same order.
    buy = {**acc, "POSITION": "BUY", "ORDER_ID": "buy-1"}
    answer = order(client, buy)
    assert order(client, {**buy, "QUANTITY": 1}).json() == answer.json()


def test_a_multiplier_scales_the_booked_quantity(client: TestClient) -> None:
    path = f"/users/{KAMRYN}/strategies/STRATEGY_B"
    taken = client.put(path, json={"instruments": ["ACC"], "multiplier": 2.5}).json()
    assert (taken["change"], taken["multiplier"]) == ("changed", "2.5")
    same = client.put(path, json={"instruments": ["ACC"], "multiplier": "2.50"}).json()
    assert (same["change"], same["sequence"]) == ("unchanged", None)
    assert client.put(path, json={"instruments": ["ACC"], "multiplier": 0}).status_code == 422
    users = client.get("/users").json()
    assert users[KAMRYN] == {
        "STRATEGY_B": {"instruments": ["ACC"], "multiplier": "2.5"},
        "STRATEGY_D": ["NTPC"],
    }
    # A GET answer goes back as it is, and changes nothing.
    assert client.post("/profiles", json=users).json()["changes"] == []
    assert client.put(path, json=users[KAMRYN]["STRATEGY_B"]).json()["change"] == "unchanged"
    bought = order(
        client,
        {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "ACC", "POSITION": "BUY", "QUANTITY": 3},
    ).json()
    assert bought["accepted_for"] == [HOLLAND, KAMRYN]
    ledger = served(client)
    kamryn = ledger.book(Book.create_id(KAMRYN, "STRATEGY_B"))
    holland = ledger.book(Book.create_id(HOLLAND, "STRATEGY_B"))
    assert kamryn.sizes["ACC"] == {"order_quantity": 3, "quantity": "7.5", "price": None}
    assert holland.sizes["ACC"]["quantity"] == "3"
    placed: Any = ledger.repository.get(Order.create_id(bought["order_id"]))
    assert placed.multipliers == {KAMRYN: "2.5"}
    # Back to 1: a change; the open position keeps the quantity it was booked with.
    back = client.put(path, json={"instruments": ["ACC"]}).json()
    assert (back["change"], back["multiplier"]) == ("changed", "1")
    assert ledger.profiles()[KAMRYN]["STRATEGY_B"] == ["ACC"]


def test_post_profiles_takes_the_object_form(client: TestClient) -> None:
    document = {
        HOLLAND: {"STRATEGY_A": ["GRASIM", "INFY"], "STRATEGY_B": ["MINDA", "ACC"]},
        KAMRYN: {
            "STRATEGY_B": {"instruments": ["ACC"], "multiplier": 3},
            "STRATEGY_D": {"instruments": ["NTPC"], "multiplier": 1},
        },
    }
    applied = client.post("/profiles", json=document).json()
    assert [(c["strategy"], c["change"], c["multiplier"]) for c in applied["changes"]] == [
        ("STRATEGY_B", "changed", "3")
    ]
    assert applied["unchanged"] == 3
    assert client.post("/profiles", json=document).json()["changes"] == []
    ledger = served(client)
    assert ledger.profiles()[KAMRYN] == {
        "STRATEGY_B": {"instruments": ["ACC"], "multiplier": "3"},
        "STRATEGY_D": ["NTPC"],
    }
    bad = {KAMRYN: {"STRATEGY_B": {"instruments": ["ACC"], "multiplier": "x"}}}
    refused = client.post("/profiles", json=bad)
    assert refused.status_code == 422
    assert "multiplier" in refused.json()["fields"]["body"]
