"""The read API in process, on real PostgreSQL, with the projections running."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from ledger.http.app import create_app
from ledger.settings import Settings


def post(client: TestClient, strategy: str, instrument: str, position: str, **extra: str) -> Any:
    body = {"STRATEGY": strategy, "INSTRUMENT": instrument, "POSITION": position, **extra}
    response = client.post("/order", json=body)
    assert response.status_code == 200
    return response.json()


def test_read_your_writes(client: TestClient) -> None:
    buy = post(client, "STRATEGY_B", "MINDA", "BUY", ORDER_ID="b1")
    positions = client.get(f"/positions?min_sequence={buy['sequence']}").json()["positions"]
    assert [(p["user"], p["instrument"], p["order_id"]) for p in positions] == [
        ("Holland Proctor", "MINDA", "b1")
    ]
    sell = post(client, "STRATEGY_B", "MINDA", "SELL", ORDER_ID="s1")
    trades = client.get(f"/trades?min_sequence={sell['sequence']}").json()
    assert trades["next"] is None
    (trade,) = trades["trades"]
    assert (trade["buy_order_id"], trade["sell_order_id"]) == ("b1", "s1")
    assert trade["opened_at"] <= trade["closed_at"]
    assert client.get("/positions").json() == {"positions": [], "next": None}
    logged = client.get(f"/orders/s1?min_sequence={sell['sequence']}").json()
    assert {k: v for k, v in logged.items() if k != "received_at"} == sell
    assert logged["received_at"]


def test_a_caught_up_trades_walk_goes_on_from_the_last_trade_s_id(client: TestClient) -> None:
    post(client, "STRATEGY_B", "MINDA", "BUY")
    sell = post(client, "STRATEGY_B", "MINDA", "SELL", ORDER_ID="first")
    seen = client.get(f"/trades?min_sequence={sell['sequence']}").json()
    assert seen["next"] is None  # caught up: nothing more yet
    post(client, "STRATEGY_B", "MINDA", "BUY")
    sell = post(client, "STRATEGY_B", "MINDA", "SELL", ORDER_ID="second")
    last = seen["trades"][-1]["id"]
    since = client.get(f"/trades?after={last}&min_sequence={sell['sequence']}").json()
    assert [t["sell_order_id"] for t in since["trades"]] == ["second"]
    assert since["trades"][0]["id"] > last


def test_a_projection_window_still_shows_every_order_and_ends_caught_up(
    settings: Settings, profile_file: Path
) -> None:
    app = create_app(settings.replace(profiles=profile_file, projection_window=0.3))
    with TestClient(app) as client:
        answers = [
            post(client, "STRATEGY_B", "MINDA", side, ORDER_ID=f"w{n}")
            for n, side in enumerate(["BUY", "SELL"] * 5)
        ]
        last = answers[-1]["sequence"]
        page = client.get(f"/orders?min_sequence={last}&limit=100").json()
        assert [o["order_id"] for o in page["orders"]] == [f"w{n}" for n in range(10)]
        trades = client.get("/trades?limit=100").json()["trades"]
        assert [t["sell_order_id"] for t in trades] == [f"w{n}" for n in range(1, 10, 2)]
        assert client.get("/health").json()["projections"]["ledger_views"]["lag"] == 0


def test_min_sequence_beyond_the_store_is_404(client: TestClient) -> None:
    response = client.get("/orders?min_sequence=999999999")
    assert response.status_code == 404  # 503 is for a wait that ran out: test_min_sequence.py
    assert "999999999" in response.json()["fields"]["min_sequence"]


@pytest.mark.parametrize("path", ["/positions", "/pnl"])
def test_as_of_beyond_the_store_is_404(client: TestClient, path: str) -> None:
    top = post(client, "STRATEGY_B", "MINDA", "BUY")["sequence"]
    assert client.get(f"{path}?as_of={top}").status_code == 200
    # What the store holds after that sequence is not known yet: no answer to give.
    response = client.get(f"{path}?as_of={top + 1}")
    assert response.status_code == 404
    assert response.json()["error"] == "as_of is not in the store yet"
    assert str(top + 1) in response.json()["fields"]["as_of"]


@pytest.mark.parametrize("order_id", ["nope", "%00", "a%01b", "x" * 65])
def test_unknown_order_is_404(client: TestClient, order_id: str) -> None:
    response = client.get(f"/orders/{order_id}")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown order"


def test_order_filters(client: TestClient) -> None:
    a = post(client, "STRATEGY_B", "MINDA", "BUY")  # Holland accepted, Kamryn rejected
    b = post(client, "STRATEGY_D", "NTPC", "BUY")  # Kamryn accepted
    c = post(client, "STRATEGY_Z", "ACC", "SELL")  # nobody
    top = c["sequence"]

    def ids(query: str) -> list[str]:
        body = client.get(f"/orders?min_sequence={top}&{query}").json()
        return [o["order_id"] for o in body["orders"]]

    assert ids("") == [a["order_id"], b["order_id"], c["order_id"]]
    assert ids("user=Kamryn%20Li") == [a["order_id"], b["order_id"]]
    assert ids("user=Holland%20Proctor") == [a["order_id"]]
    assert ids("status=REJECTED") == [c["order_id"]]
    assert ids("strategy=STRATEGY_D") == [b["order_id"]]
    assert ids("instrument=ACC&status=ACCEPTED") == []


def test_pagination_walks_every_order_once_while_orders_arrive(client: TestClient) -> None:
    before = [post(client, "STRATEGY_B", "MINDA", side) for side in ["BUY", "SELL"] * 10]
    seen: list[int] = []
    cursor: str | None = None
    arrived: list[dict[str, Any]] = []
    while True:
        query = f"/orders?limit=3&min_sequence={before[-1]['sequence']}"
        page = client.get(query + (f"&after={cursor}" if cursor else "")).json()
        seen.extend(o["sequence"] for o in page["orders"])
        arrived.append(post(client, "STRATEGY_D", "NTPC", "BUY"))  # new orders keep coming
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == sorted(set(seen))  # ascending, none twice
    assert {o["sequence"] for o in before} <= set(seen)
    everything = client.get(f"/orders?limit=1000&min_sequence={arrived[-1]['sequence']}").json()
    all_sequences = [o["sequence"] for o in everything["orders"]]
    assert seen == [s for s in all_sequences if s <= seen[-1]]  # no order skipped


def test_trades_paginate(client: TestClient) -> None:
    last = None
    for _ in range(5):
        post(client, "STRATEGY_B", "MINDA", "BUY")
        last = post(client, "STRATEGY_B", "MINDA", "SELL")
    assert last is not None
    pages = []
    cursor = None
    while True:
        query = f"/trades?limit=2&min_sequence={last['sequence']}"
        body = client.get(query + (f"&after={cursor}" if cursor else "")).json()
        pages.append(body["trades"])
        cursor = body["next"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    sells = [t["sell_order_id"] for p in pages for t in p]
    assert len(set(sells)) == 5


def test_positions_as_of(client: TestClient) -> None:
    buy = post(client, "STRATEGY_B", "MINDA", "BUY")
    post(client, "STRATEGY_B", "MINDA", "SELL")
    then = client.get(f"/positions?as_of={buy['sequence']}").json()["positions"]
    assert [p["order_id"] for p in then] == [buy["order_id"]]
    before = client.get(f"/positions?as_of={buy['sequence'] - 1}").json()
    assert before == {"positions": [], "next": None}


def walk(client: TestClient, query: str, limit: int) -> list[tuple[str, str, str]]:
    """Every position of a paged /positions read, following `next`."""
    keys: list[tuple[str, str, str]] = []
    cursor = None
    while True:
        page = client.get(f"{query}&limit={limit}" + (f"&after={cursor}" if cursor else ""))
        assert page.status_code == 200, page.text
        got = [(p["user"], p["strategy"], p["instrument"]) for p in page.json()["positions"]]
        assert len(got) <= limit
        keys += got
        cursor = page.json()["next"]
        if cursor is None:
            return keys
        assert len(got) == limit  # a page is cut short only at its end


# Every instrument of the example's profiles: six positions of two users.
BOOKED = [("STRATEGY_A", "GRASIM"), ("STRATEGY_A", "INFY"), ("STRATEGY_B", "MINDA")]
BOOKED += [("STRATEGY_B", "ACC"), ("STRATEGY_D", "NTPC")]


def test_positions_come_in_pages_in_key_order_now_and_as_of(client: TestClient) -> None:
    for strategy, instrument in BOOKED:
        top = post(client, strategy, instrument, "BUY")["sequence"]
    everything = client.get(f"/positions?min_sequence={top}&limit=10000").json()
    assert everything["next"] is None
    keys = [(p["user"], p["strategy"], p["instrument"]) for p in everything["positions"]]
    assert len(keys) == 6
    assert keys == sorted(keys)  # the example's names sort alike in C and in any locale
    for limit in (1, 2, 3, len(keys), len(keys) + 1):
        assert walk(client, f"/positions?min_sequence={top}", limit) == keys
        assert walk(client, f"/positions?as_of={top}", limit) == keys
    user = keys[0][0]
    mine = [k for k in keys if k[0] == user]
    assert walk(client, f"/positions?as_of={top}&user={user.replace(' ', '+')}", 1) == mine
    assert walk(client, f"/positions?min_sequence={top}&strategy=STRATEGY_B", 2) == [
        k for k in keys if k[1] == "STRATEGY_B"
    ]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("/orders?limit=0", "limit"),
        ("/orders?limit=1001", "limit"),
        ("/orders?limit=ten", "limit"),
        ("/orders?after=-1", "after"),
        ("/orders?status=OPEN", "status"),
        ("/orders?colour=red", "colour"),
        ("/orders?user=a&user=b", "user"),
        ("/trades?min_sequence=x", "min_sequence"),
        ("/positions?as_of=1.5", "as_of"),
        ("/positions?limit=0", "limit"),
        ("/positions?limit=10001", "limit"),
        ("/positions?after=5", "after"),
        ("/positions?after=WyJhIiwiYiJd", "after"),  # a list of two names
        # Three texts, but not names: a NUL (which PostgreSQL refuses), an empty one.
        ("/positions?after=WyJhXHUwMDAwIiwgImIiLCAiYyJd", "after"),
        ("/positions?after=WyJhIiwgImIiLCAiIl0", "after"),
        ("/positions?after=%E2%82%AC", "after"),
        ("/positions?as_of=3&after=", "after"),
        ("/positions?user=" + "u" * 65, "user"),
        ("/orders/x?limit=1", "limit"),
    ],
)
def test_bad_query_parameters_are_422(client: TestClient, query: str, name: str) -> None:
    response = client.get(query)
    assert response.status_code == 422
    assert name in response.json()["fields"]


def test_health_reports_projection_lag(client: TestClient) -> None:
    order = post(client, "STRATEGY_B", "MINDA", "BUY")
    client.get(f"/orders?min_sequence={order['sequence']}")
    health = client.get("/health").json()
    projection = health["projections"]["ledger_views"]
    assert projection["processed"] == order["sequence"] == health["sequence"]
    assert projection["lag"] == 0
    assert projection["alive"]
