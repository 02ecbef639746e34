"""GET /orders and /trades newest first, and the console page open without the token."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin

from starlette.testclient import TestClient

from ledger.http import console
from tests.support import TOKEN


def post(client: TestClient, strategy: str, instrument: str, position: str) -> Any:
    body = {"STRATEGY": strategy, "INSTRUMENT": instrument, "POSITION": position}
    response = client.post("/order", json=body)
    assert response.status_code == 200
    return response.json()


def walk(client: TestClient, query: str, key: str) -> list[list[Any]]:
    """Every page of a read, following `next`."""
    pages: list[list[Any]] = []
    cursor: str | None = None
    while True:
        page = client.get(query + (f"&after={cursor}" if cursor else "")).json()
        pages.append(page[key])
        cursor = page["next"]
        if cursor is None:
            return pages


def test_orders_newest_first_page_backwards(client: TestClient) -> None:
    placed = [post(client, "STRATEGY_B", "MINDA", side) for side in ["BUY", "SELL"] * 3]
    placed.append(post(client, "STRATEGY_D", "NTPC", "BUY"))  # Kamryn's only
    top = placed[-1]["sequence"]
    newest = [o["order_id"] for o in reversed(placed)]
    pages = walk(client, f"/orders?newest_first=true&limit=3&min_sequence={top}", "orders")
    assert [[o["order_id"] for o in page] for page in pages] == [
        newest[0:3],
        newest[3:6],
        newest[6:],
    ]
    latest = client.get("/orders?newest_first=true&limit=1&status=ACCEPTED&strategy=STRATEGY_B")
    assert [o["order_id"] for o in latest.json()["orders"]] == [placed[-2]["order_id"]]
    oldest_first = client.get(f"/orders?newest_first=false&min_sequence={top}").json()
    assert [o["order_id"] for o in oldest_first["orders"]] == newest[::-1]
    bad = client.get("/orders?newest_first=sideways")
    assert bad.status_code == 422
    assert "newest_first" in bad.json()["fields"]


def test_trades_newest_first(client: TestClient) -> None:
    placed = [post(client, "STRATEGY_B", "MINDA", side) for side in ["BUY", "SELL"] * 3]
    top = placed[-1]["sequence"]
    pages = walk(client, f"/trades?newest_first=true&limit=2&min_sequence={top}", "trades")
    sells = [[t["sell_order_id"] for t in page] for page in pages]
    assert sells == [[placed[5]["order_id"], placed[3]["order_id"]], [placed[1]["order_id"]]]


def test_the_option_is_in_the_openapi_document(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    for path in ("/orders", "/trades"):
        (described,) = [
            p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "newest_first"
        ]
        assert described["schema"]["type"] == "boolean"
        assert "backwards" in described["description"]


def test_console_and_its_files_load_without_the_token(locked: TestClient) -> None:
    page = locked.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    refs = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert {"console/assets/main.js", "console/assets/console.css"} <= set(refs)
    modules = sorted(path.name for path in console.ASSETS.glob("*.js"))
    assert "sse.js" in modules
    for name in modules:
        asset = locked.get(urljoin("/console/assets/", name))
        assert asset.status_code == 200, name
        assert "javascript" in asset.headers["content-type"]
    # Every data request still needs it; the open prefix reaches nothing else.
    for path in ("/users", "/orders", "/stream", "/console/", "/index.html"):
        assert locked.get(path).status_code == 401, path
    escaped = locked.get("/console/assets/%2e%2e/openapi.json")
    assert escaped.status_code == 404
    assert "paths" not in escaped.text
    assert locked.get("/users", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
