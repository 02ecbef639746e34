"""GET /pnl, and quantities and prices in the other reads, in process on real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from ledger.http.app import create_app
from ledger.settings import Settings

# Holland books twice and Kamryn half of every STRATEGY_D order.
SCALED = {
    "Holland Proctor": {"STRATEGY_B": {"instruments": ["MINDA", "ACC"], "multiplier": "2"}},
    "Kamryn Li": {
        "STRATEGY_B": ["ACC"],
        "STRATEGY_D": {"instruments": ["NTPC"], "multiplier": "0.5"},
    },
}


@pytest.fixture
def client(settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    profiles = tmp_path / "scaled.json"
    profiles.write_text(json.dumps(SCALED))
    with TestClient(create_app(settings.replace(profiles=profiles))) as test_client:
        yield test_client


def post(client: TestClient, body: dict[str, Any]) -> Any:
    response = client.post("/order", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def order(strategy: str, instrument: str, side: str, order_id: str, **more: Any) -> dict[str, Any]:
    return {
        "STRATEGY": strategy,
        "INSTRUMENT": instrument,
        "POSITION": side,
        "ORDER_ID": order_id,
        **more,
    }


def line(name: str, value: str, pnl: str, trades: int, won: int, lost: int, unpriced: int) -> Any:
    return {name: value, "realised_pnl": pnl, "trades": trades, "winners": won, "losers": lost,
            "unpriced": unpriced}  # fmt: skip


def total(pnl: str, trades: int, won: int, lost: int, unpriced: int) -> dict[str, Any]:
    return {k: v for k, v in line("", "", pnl, trades, won, lost, unpriced).items() if k != ""}


@pytest.fixture
def trading(client: TestClient) -> list[Any]:
    """Three round trips: one won and one lost for Kamryn, one without a BUY price."""
    return [
        post(client, order("STRATEGY_B", "ACC", "BUY", "b1", QUANTITY=10, PRICE="100")),
        post(client, order("STRATEGY_B", "ACC", "SELL", "s1", PRICE=101.25)),  # a JSON number
        post(client, order("STRATEGY_D", "NTPC", "BUY", "b2", QUANTITY=3, PRICE="50.00")),
        post(client, order("STRATEGY_D", "NTPC", "SELL", "s2", QUANTITY=3, PRICE="40")),
        post(client, order("STRATEGY_B", "MINDA", "BUY", "b3")),
        post(client, order("STRATEGY_B", "MINDA", "SELL", "s3", PRICE="5")),
    ]


def test_pnl_per_user_and_per_strategy(client: TestClient, trading: list[Any]) -> None:
    top = trading[-1]["sequence"]
    body = client.get(f"/pnl?min_sequence={top}").json()
    assert body == {
        "by_user": [
            line(
                "user", "Holland Proctor", "25", 2, 1, 0, 1
            ),  # (101.25 - 100) x 20; MINDA had no BUY price
            line("user", "Kamryn Li", "-2.5", 2, 1, 1, 0),  # 1.25 x 10 + (40 - 50) x 1.5
        ],
        "by_strategy": [
            line("strategy", "STRATEGY_B", "37.5", 3, 2, 0, 1),
            line("strategy", "STRATEGY_D", "-15", 1, 0, 1, 0),
        ],
        "total": total("22.5", 4, 2, 1, 1),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("user=Kamryn%20Li", total("-2.5", 2, 1, 1, 0)),
        ("strategy=STRATEGY_D", total("-15", 1, 0, 1, 0)),
        ("instrument=MINDA", total("0", 1, 0, 0, 1)),
        ("user=Holland%20Proctor&instrument=NTPC", total("0", 0, 0, 0, 0)),
    ],
)
def test_pnl_filters(
    client: TestClient, trading: list[Any], query: str, expected: dict[str, Any]
) -> None:
    body = client.get(f"/pnl?min_sequence={trading[-1]['sequence']}&{query}").json()
    assert body["total"] == expected
    if expected["trades"] == 0:
        assert body["by_user"] == body["by_strategy"] == []


def test_pnl_as_of_a_past_sequence_folds_the_events(client: TestClient, trading: list[Any]) -> None:
    first_sell = trading[1]["sequence"]
    then = client.get(f"/pnl?as_of={first_sell}").json()
    assert then["total"] == total("37.5", 2, 2, 0, 0)
    assert client.get(f"/pnl?as_of={first_sell - 1}").json()["total"] == total("0", 0, 0, 0, 0)
    top = trading[-1]["sequence"]
    assert client.get(f"/pnl?as_of={top}").json() == client.get(f"/pnl?min_sequence={top}").json()
    kamryn = client.get(f"/pnl?as_of={top}&user=Kamryn%20Li&strategy=STRATEGY_B").json()
    assert kamryn["by_user"] == [line("user", "Kamryn Li", "12.5", 1, 1, 0, 0)]


def test_trades_positions_and_orders_carry_the_numbers(
    client: TestClient, trading: list[Any]
) -> None:
    top = trading[-1]["sequence"]
    trades = client.get(f"/trades?min_sequence={top}&user=Holland%20Proctor").json()["trades"]
    numbers = [
        (t["quantity"], t["entry_price"], t["exit_price"], t["realised_pnl"]) for t in trades
    ]
    assert numbers == [("20", "100", "101.25", "25"), ("2", None, "5", None)]
    buy = trading[2]["sequence"]
    (held,) = client.get(f"/positions?as_of={buy}&strategy=STRATEGY_D").json()["positions"]
    assert (held["quantity"], held["entry_price"]) == ("1.5", "50")
    again = post(client, order("STRATEGY_D", "NTPC", "BUY", "b4", QUANTITY=7, PRICE="0.01"))
    (now,) = client.get(f"/positions?min_sequence={again['sequence']}").json()["positions"]
    assert (now["quantity"], now["entry_price"]) == ("3.5", "0.01")
    logged = client.get(f"/orders/b2?min_sequence={top}").json()
    assert (logged["quantity"], logged["price"]) == (3, "50")
    assert {k: v for k, v in logged.items() if k != "received_at"} == trading[2]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("as_of=x", "as_of"),
        ("as_of=-1", "as_of"),
        ("limit=5", "limit"),
        ("user=a&user=b", "user"),
        ("strategy=" + "s" * 65, "strategy"),
        ("colour=red", "colour"),
    ],
)
def test_bad_pnl_queries_are_422(client: TestClient, query: str, name: str) -> None:
    response = client.get(f"/pnl?{query}")
    assert response.status_code == 422
    assert name in response.json()["fields"]


def test_pnl_min_sequence_beyond_the_store_is_404(client: TestClient) -> None:
    assert client.get("/pnl?min_sequence=999999999").status_code == 404
    assert client.get("/pnl").json() == {
        "by_user": [],
        "by_strategy": [],
        "total": total("0", 0, 0, 0, 0),
    }
