"""The HTTP API in process (Starlette's test client), on real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.support import EXAMPLE_PROFILES


def sequence(client: TestClient) -> int:
    value: int = client.get("/health").json()["sequence"]
    return value


def test_worked_example_on_both_routes(client: TestClient) -> None:
    first = client.post(
        "/create_order",
        json={"STRATEGY": "STRATEGY_A", "INSTRUMENT": "GRASIM", "POSITION": "SELL"},
    )
    assert first.status_code == 200
    assert first.json()["RESPONSE"] == "REJECTED"
    buy = client.post(
        "/order", json={"strategy": "STRATEGY_B", "instrument": "MINDA", "position": "BUY"}
    )
    assert buy.json()["RESPONSE"] == "ACCEPTED"
    assert buy.json()["accepted_for"] == ["Holland Proctor"]
    assert buy.json()["sequence"] > first.json()["sequence"]
    third = client.post(
        "/order", json={"STRATEGY": "STRATEGY_D", "INSTRUMENT": "INFY", "POSITION": "BUY"}
    )
    assert third.json()["RESPONSE"] == "REJECTED"
    fourth = client.post(
        "/create_order",
        json={"STRATEGY": "STRATEGY_A", "INSTRUMENT": "MINDA", "POSITION": "SELL"},
    )
    assert fourth.json()["rejected_for"] == [
        {"user": "Holland Proctor", "reason": "INSTRUMENT_NOT_IN_STRATEGY"}
    ]
    sell = client.post(
        "/order", json={"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "SELL"}
    )
    assert sell.json()["RESPONSE"] == "ACCEPTED"


def test_answer_has_every_field(client: TestClient) -> None:
    body = {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY", "ORDER_ID": "k1"}
    answer = client.post("/order", json=body).json()
    assert set(answer) == {
        "RESPONSE",
        "order_id",
        "sequence",
        "strategy",
        "instrument",
        "position",
        "accepted_for",
        "rejected_for",
        "reason",
        "quantity",
        "price",
    }
    assert answer["order_id"] == "k1"
    assert (answer["quantity"], answer["price"]) == (1, None)
    assert answer["rejected_for"] == [{"user": "Kamryn Li", "reason": "INSTRUMENT_NOT_IN_STRATEGY"}]


def test_same_order_id_answers_the_same_and_writes_nothing(client: TestClient) -> None:
    body = {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY", "ORDER_ID": "i1"}
    first = client.post("/order", json=body)
    top = sequence(client)
    again = client.post("/create_order", json=body)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert sequence(client) == top


def test_order_id_reused_for_another_order_is_409(client: TestClient) -> None:
    body = {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY", "ORDER_ID": "r1"}
    client.post("/order", json=body)
    top = sequence(client)
    clash = client.post("/order", json={**body, "POSITION": "SELL"})
    assert clash.status_code == 409
    assert clash.json()["fields"] == {"ORDER_ID": "already used"}
    assert sequence(client) == top


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "body"),
        (b"not json", "body"),
        (b"[1, 2]", "body"),
        (b"null", "body"),
        (b'{"STRATEGY": "STRATEGY_B"', "body"),
        (b'{"STRATEGY": "S\xff", "INSTRUMENT": "A", "POSITION": "BUY"}', "body"),
        (b'{"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA"}', "POSITION"),
        (b'{"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "HOLD"}', "POSITION"),
        (b'{"STRATEGY": 1, "INSTRUMENT": "MINDA", "POSITION": "BUY"}', "STRATEGY"),
        (b'{"STRATEGY": "", "INSTRUMENT": "MINDA", "POSITION": "BUY"}', "STRATEGY"),
        (b'{"STRATEGY": "S", "INSTRUMENT": "A\\u0000", "POSITION": "BUY"}', "INSTRUMENT"),
        (b'{"STRATEGY": "S", "INSTRUMENT": "A\\ud800", "POSITION": "BUY"}', None),
        (b'{"STRATEGY": "S", "INSTRUMENT": {"a": 1}, "POSITION": "BUY"}', "INSTRUMENT"),
        (b'{"STRATEGY": "S", "INSTRUMENT": "A", "POSITION": "BUY", "QTY": 1}', "QTY"),
        (b'{"STRATEGY": "S", "strategy": "S", "INSTRUMENT": "A", "POSITION": "BUY"}', "STRATEGY"),
        (b'{"STRATEGY": "S", "INSTRUMENT": "A", "POSITION": "BUY", "ORDER_ID": 7}', "ORDER_ID"),
        (b'{"STRATEGY": "S", "INSTRUMENT": 1e400, "POSITION": "BUY"}', None),
        (b"[" * 5000 + b"]" * 5000, "body"),
    ],
)
def test_malformed_bodies_are_422_and_write_nothing(
    client: TestClient, body: bytes, field: str | None
) -> None:
    top = sequence(client)
    response = client.post("/order", content=body)
    assert response.status_code == 422
    error = response.json()
    assert error["error"]
    if field is not None:
        assert field in error["fields"]
    assert sequence(client) == top


def test_long_strings_are_422(client: TestClient) -> None:
    body = {"STRATEGY": "S" * 100_000, "INSTRUMENT": "MINDA", "POSITION": "BUY"}
    response = client.post("/order", content=json.dumps(body).encode())
    assert response.status_code == 413  # over 64 KiB before it is even parsed
    body["STRATEGY"] = "S" * 65
    response = client.post("/order", json=body)
    assert response.status_code == 422
    assert "STRATEGY" in response.json()["fields"]


def test_body_over_64_kib_is_413(client: TestClient) -> None:
    top = sequence(client)
    response = client.post("/order", content=b" " * (64 * 1024 + 1))
    assert response.status_code == 413
    assert "error" in response.json()

    def chunks() -> Iterator[bytes]:
        for _ in range(70):
            yield b" " * 1024

    streamed = client.post("/order", content=chunks())  # no Content-Length: counted as it comes
    assert streamed.status_code == 413
    assert sequence(client) == top


@pytest.mark.parametrize("name", ["L&T", "Robert'); DROP TABLE orders;--", "Сбербанк", "<b>x</b>"])
def test_odd_but_valid_strings_are_data(client: TestClient, name: str) -> None:
    answer = client.post(
        "/order", json={"STRATEGY": "STRATEGY_B", "INSTRUMENT": name, "POSITION": "BUY"}
    )
    assert answer.status_code == 200
    assert answer.json()["instrument"] == name
    assert answer.json()["rejected_for"][0]["reason"] == "INSTRUMENT_NOT_IN_STRATEGY"


def test_health_and_users(client: TestClient) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["database"] == "ok"
    assert client.get("/users").json() == EXAMPLE_PROFILES


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]
    wrong: Any = client.get("/order")
    assert wrong.status_code == 405
    assert wrong.json()["error"]


def test_a_field_given_twice_is_422_naming_it(client: TestClient) -> None:
    top = sequence(client)
    body = (
        b'{"STRATEGY":"STRATEGY_A","STRATEGY":"STRATEGY_B","INSTRUMENT":"MINDA","POSITION":"BUY"}'
    )
    response = client.post("/order", content=body)
    assert response.status_code == 422
    assert "STRATEGY" in response.json()["fields"]
    assert sequence(client) == top
