"""The producer against an HTTP stub: order shape, retries with the same ORDER_ID, counts."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ledger.cli import main
from ledger.producer import Summary, produce, random_orders, send

STRATEGIES = ["STRATEGY_A", "STRATEGY_B", "STRATEGY_C"]
INSTRUMENTS = ["ACC", "INFY", "L&T", "NTPC"]
URL = "http://ledger.test/create_order"
ORDER = {"STRATEGY": "STRATEGY_A", "INSTRUMENT": "ACC", "POSITION": "BUY", "ORDER_ID": "run-1"}

Handler = Callable[[httpx.Request], httpx.Response]


def answer(request: httpx.Request) -> httpx.Response:
    """ACCEPTED for a BUY, REJECTED for a SELL, echoing the ORDER_ID."""
    order = json.loads(request.content)
    response = "ACCEPTED" if order["POSITION"] == "BUY" else "REJECTED"
    return httpx.Response(200, json={"ORDER_ID": order["ORDER_ID"], "RESPONSE": response})


class Recorder:
    """A stub server: the requests it saw, and answers played in turn."""

    def __init__(self, *steps: Handler) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        return step(request)

    def order_ids(self) -> list[str]:
        return [json.loads(request.content)["ORDER_ID"] for request in self.requests]


def status(code: int, text: str = "") -> Handler:
    return lambda request: httpx.Response(code, text=text)


def refuse_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def run_send(
    stub: Recorder, order: dict[str, str] | None = None, attempts: int = 10
) -> tuple[dict[str, Any] | None, Summary]:
    summary = Summary()

    async def main() -> dict[str, Any] | None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(stub)) as client:
            return await send(client, URL, order or ORDER, summary, attempts=attempts, backoff=0)

    return asyncio.run(main()), summary


def run_produce(orders: list[dict[str, str]], stub: Handler, concurrency: int) -> Summary:
    transport = httpx.MockTransport(stub)
    url = "http://ledger.test"
    return asyncio.run(
        produce(url, orders, interval=0, concurrency=concurrency, transport=transport, backoff=0)
    )


def test_random_orders_have_the_original_shape_and_distinct_ids() -> None:
    orders = random_orders(STRATEGIES, INSTRUMENTS, 500, random.Random(3))
    assert len(orders) == 500
    assert len({order["ORDER_ID"] for order in orders}) == 500
    for order in orders:
        assert list(order) == ["STRATEGY", "INSTRUMENT", "POSITION", "ORDER_ID"]
        assert order["STRATEGY"] in STRATEGIES
        assert order["INSTRUMENT"] in INSTRUMENTS
        assert order["POSITION"] in ("BUY", "SELL")
    assert {order["POSITION"] for order in orders} == {"BUY", "SELL"}


def test_random_orders_differ_in_ids_between_runs_but_not_in_choices() -> None:
    first = random_orders(STRATEGIES, INSTRUMENTS, 50, random.Random(9))
    again = random_orders(STRATEGIES, INSTRUMENTS, 50, random.Random(9))

    def choices(orders: list[dict[str, str]]) -> list[tuple[str, str, str]]:
        return [(o["STRATEGY"], o["INSTRUMENT"], o["POSITION"]) for o in orders]

    assert choices(first) == choices(again)
    # A second run must not reuse ORDER_IDs: the ledger would answer them from the first run.
    assert not {o["ORDER_ID"] for o in first} & {o["ORDER_ID"] for o in again}


def test_send_returns_the_parsed_answer() -> None:
    stub = Recorder(answer)
    result, summary = run_send(stub)
    assert result == {"ORDER_ID": "run-1", "RESPONSE": "ACCEPTED"}
    assert summary.retried == summary.failed == 0
    assert not summary.errors
    [request] = stub.requests
    assert request.method == "POST"
    assert str(request.url) == URL
    assert json.loads(request.content) == ORDER


@pytest.mark.parametrize(
    "failure", [status(503), status(502), status(504), refuse_connection, read_timeout]
)
def test_send_retries_with_the_same_order_id(failure: Handler) -> None:
    stub = Recorder(failure, failure, answer)
    result, summary = run_send(stub)
    assert result is not None
    assert result["RESPONSE"] == "ACCEPTED"
    assert stub.order_ids() == ["run-1"] * 3
    assert [json.loads(r.content) for r in stub.requests] == [ORDER] * 3
    assert summary.retried == 2
    assert summary.failed == 0


def test_send_gives_up_after_the_attempts() -> None:
    stub = Recorder(status(503))
    result, summary = run_send(stub, attempts=4)
    assert result is None
    assert len(stub.requests) == 4
    assert summary.retried == 3
    assert summary.failed == 1
    assert summary.errors == ["run-1: HTTP 503"]


def test_send_records_the_last_transport_error() -> None:
    stub = Recorder(refuse_connection)
    result, summary = run_send(stub, attempts=2)
    assert result is None
    assert summary.errors == ["run-1: ConnectError: connection refused"]


@pytest.mark.parametrize("code", [400, 401, 404, 409, 422])
def test_send_stops_on_a_client_error(code: int) -> None:
    stub = Recorder(status(code, '{"error": "malformed order"}'), answer)
    result, summary = run_send(stub)
    assert result is None
    assert len(stub.requests) == 1
    assert summary.retried == 0
    assert summary.failed == 1
    assert summary.errors == [f'run-1: HTTP {code}: {{"error": "malformed order"}}']


def test_send_keeps_error_bodies_short() -> None:
    _, summary = run_send(Recorder(status(400, "x" * 1000)))
    assert summary.errors == ["run-1: HTTP 400: " + "x" * 200]


def test_produce_counts_over_three_connections() -> None:
    orders = random_orders(STRATEGIES, INSTRUMENTS, 30, random.Random(5))
    first_seen: set[str] = set()
    in_flight = 0
    most = 0

    async def server(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.001)  # let the other connections send meanwhile
        in_flight -= 1
        order_id = json.loads(request.content)["ORDER_ID"]
        if order_id.endswith("7") and order_id not in first_seen:
            first_seen.add(order_id)
            return httpx.Response(503)
        return answer(request)

    summary = asyncio.run(
        produce(
            "http://ledger.test/",
            orders,
            interval=0,
            concurrency=3,
            transport=httpx.MockTransport(server),
            backoff=0,
        )
    )
    buys = sum(order["POSITION"] == "BUY" for order in orders)
    assert summary.sent == 30
    assert summary.accepted == buys
    assert summary.rejected == 30 - buys
    assert summary.retried == len(first_seen) == 3  # ORDER_IDs ending -7, -17, -27
    assert summary.failed == 0
    assert summary.as_dict() == {
        "sent": 30,
        "accepted": buys,
        "rejected": 30 - buys,
        "retried": 3,
        "failed": 0,
        "unsent": 0,
    }
    assert most == 3


def test_produce_counts_failures_and_keeps_going() -> None:
    orders = random_orders(STRATEGIES, INSTRUMENTS, 6, random.Random(6))
    refused = orders[2]["ORDER_ID"]

    def server(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["ORDER_ID"] == refused:
            return httpx.Response(400, text="bad")
        return answer(request)

    summary = run_produce(orders, server, concurrency=3)
    assert summary.sent == 6
    assert summary.failed == 1
    assert summary.accepted + summary.rejected == 5
    assert summary.errors == [f"{refused}: HTTP 400: bad"]


@pytest.mark.parametrize("failure", [refuse_connection, status(503)])
def test_produce_stops_when_the_ledger_does_not_answer(failure: Handler) -> None:
    orders = random_orders(STRATEGIES, INSTRUMENTS, 20, random.Random(7))
    stub = Recorder(failure)
    summary = run_produce(orders, stub, concurrency=2)
    # Each connection spends its attempts on one order, then the run stops.
    assert summary.failed == 2
    assert summary.sent == 2
    assert summary.unsent == 18
    assert len(stub.requests) == 20  # 10 attempts for each of the two orders
    assert set(stub.order_ids()) == {orders[0]["ORDER_ID"], orders[1]["ORDER_ID"]}


@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_produce_needs_at_least_one_connection(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["produce", "--concurrency", value])
    assert exited.value.code == 2
    assert "--concurrency" in capsys.readouterr().err
