"""Operations in process: auth, metrics, the OpenAPI document, races on one book."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from ledger.http.limits import AnswerBudget
from tests.support import TOKEN

MINDA_BUY = {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY"}


@pytest.mark.parametrize(
    "path", ["/users", "/orders", "/positions", "/trades", "/metrics", "/openapi.json"]
)
def test_token_required_everywhere_but_health(locked: TestClient, path: str) -> None:
    missing = locked.get(path)
    assert missing.status_code == 401
    assert missing.json()["error"]
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = locked.get(path, headers={"Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 401
    right = locked.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200


def test_token_guards_orders_and_leaves_health_open(locked: TestClient) -> None:
    top = locked.get("/health").json()["sequence"]
    assert locked.post("/order", json=MINDA_BUY).status_code == 401
    assert locked.get("/health").json()["sequence"] == top  # nothing written
    ok = locked.post("/order", json=MINDA_BUY, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


def test_metrics_count_stored_orders_batches_and_lag(client: TestClient) -> None:
    client.post("/order", json={**MINDA_BUY, "ORDER_ID": "m1"})
    client.post("/order", json={**MINDA_BUY, "ORDER_ID": "m1"})  # answered again: not a new order
    client.post("/order", json=MINDA_BUY)
    client.post("/order", json={**MINDA_BUY, "STRATEGY": "STRATEGY_Z"})
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert values[("ledger_orders_total", (("outcome", "ACCEPTED"),))] == 1
    assert values[("ledger_orders_total", (("outcome", "REJECTED"),))] == 2
    assert values[("ledger_batch_size_count", ())] == 4
    assert values[("ledger_commit_seconds_count", ())] == 4
    assert values[("ledger_projection_lag", ())] >= 0


def test_openapi_describes_every_route(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    paths = set(document["paths"])
    routes = {getattr(r, "path_format", "") for r in client.app.routes}  # type: ignore[attr-defined]
    static = {"/docs/assets/{path}", "/console/assets/{path}"}  # files, not operations
    assert routes - {"/openapi.json", "/docs", *static} <= paths
    assert "text/html" in client.get("/docs").headers["content-type"]


def test_64_identical_buys_at_once_accept_exactly_one(client: TestClient) -> None:
    answers: list[Any] = []
    start = threading.Barrier(64)

    def buy() -> None:
        start.wait()
        answers.append(client.post("/order", json=MINDA_BUY).json())

    threads = [threading.Thread(target=buy) for _ in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accepted = [a for a in answers if a["RESPONSE"] == "ACCEPTED"]
    assert len(answers) == 64
    assert len(accepted) == 1
    assert accepted[0]["accepted_for"] == ["Holland Proctor"]
    reasons = {r["reason"] for a in answers if a is not accepted[0] for r in a["rejected_for"]}
    assert "ALREADY_OPEN" in reasons


@pytest.mark.parametrize(
    "name", ["L&T", "Robert'); DROP TABLE view_orders;--", "Сбербанк", "<b>x</b>", "a\u00a0b"]
)
def test_odd_strings_are_stored_and_returned_byte_for_byte(client: TestClient, name: str) -> None:
    body = {"STRATEGY": name, "INSTRUMENT": name, "POSITION": "SELL", "ORDER_ID": name}
    answer = client.post("/order", json=body).json()
    assert answer["strategy"] == answer["instrument"] == answer["order_id"] == name
    logged = client.get("/orders", params={"min_sequence": answer["sequence"], "strategy": name})
    assert logged.status_code == 200
    (order,) = logged.json()["orders"]
    assert order["instrument"] == name
    assert order["order_id"] == name


def test_oversized_headers_are_431_and_write_nothing(client: TestClient) -> None:
    top = client.get("/health").json()["sequence"]
    response = client.post("/order", json=MINDA_BUY, headers={"X-Padding": "a" * 20_000})
    assert response.status_code == 431
    assert response.json()["error"]
    assert client.get("/health").json()["sequence"] == top


def test_a_path_ending_in_a_newline_is_no_route(client: TestClient) -> None:
    stored = client.post("/order", json={**MINDA_BUY, "ORDER_ID": "nl"}).json()
    read = client.get("/orders/nl", params={"min_sequence": stored["sequence"]})
    assert read.json()["sequence"] == stored["sequence"], read.text
    for method, path in [("POST", "/order%0A"), ("GET", "/orders/nl%0A"), ("GET", "/health%0a")]:
        response = client.request(method, path, json={**MINDA_BUY, "ORDER_ID": "nl-2"})
        assert response.status_code == 404, path
        assert response.json()["error"] == "Not Found"
    assert client.get("/health").json()["sequence"] == stored["sequence"]  # the first only


def test_long_answers_go_through_the_answer_budget(client: TestClient) -> None:
    app: Any = client.app
    assert AnswerBudget in [m.cls for m in app.user_middleware]
