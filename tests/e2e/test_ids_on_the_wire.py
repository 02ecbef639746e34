"""Against the real server: odd ORDER_IDs are fetched as themselves and logged as one field."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx

from tests.support import Server

FORGED = "x seq=1 response=REJECTED"


def test_ids_with_slashes_and_percent_are_fetched_and_forged_ids_are_quoted(
    embedded_server: Server, tmp_path: Path
) -> None:
    ids = ["zz/", "a%2Fb", "a/b", FORGED]
    top = 0
    for order_id in ids:
        body = {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "SELL"}
        posted = embedded_server.post({**body, "ORDER_ID": order_id})
        assert posted.status_code == 200, posted.text
        top = posted.json()["sequence"]
    for order_id in ids:  # uvicorn decodes the path once: %2F is "/", %252F is "%2F"
        url = f"{embedded_server.url}/orders/{quote(order_id, safe='')}?min_sequence={top}"
        fetched = httpx.get(url, timeout=10)
        assert fetched.status_code == 200, (order_id, fetched.text)
        assert fetched.json()["order_id"] == order_id
    moved = httpx.get(f"{embedded_server.url}/orders/zz%2F%2F", timeout=10)
    assert moved.status_code == 404  # no redirect to "zz/" or anything else
    daily = "".join(f.read_text() for f in (tmp_path / "logs").glob("log_*.log"))
    assert f'order_id="{FORGED}" seq=' in daily
