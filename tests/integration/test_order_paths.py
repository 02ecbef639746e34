"""Every accepted ORDER_ID can be fetched, and no path is ever answered with a redirect."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

MINDA_BUY = {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY"}


# Not "a%2Fb": the test client decodes the path twice (uvicorn once); tests/e2e has that case.
@pytest.mark.parametrize("order_id", ["zz/", "a/b", "/lead", "//", "50%", "a?b#c"])
def test_an_order_id_with_slashes_is_fetched_as_itself(client: TestClient, order_id: str) -> None:
    posted = client.post("/order", json={**MINDA_BUY, "ORDER_ID": order_id})
    assert posted.status_code == 200
    wanted = posted.json()["sequence"]
    other = client.post("/order", json={**MINDA_BUY, "ORDER_ID": order_id.strip("/") or "x"})
    assert other.status_code == 200
    fetched = client.get(
        f"/orders/{quote(order_id, safe='')}?min_sequence={other.json()['sequence']}",
        follow_redirects=False,
    )
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["order_id"] == order_id
    assert fetched.json()["sequence"] == wanted


def test_an_unknown_id_with_a_slash_is_404_not_another_order(client: TestClient) -> None:
    assert client.post("/order", json={**MINDA_BUY, "ORDER_ID": "zz"}).status_code == 200
    for path in ("/orders/zz%2F", "/orders/zz/", "/orders/", "/orders//zz"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 404, path
        assert response.json()["error"] == "unknown order"


PATHS = ["/", "/order/", "/create_order/", "/users/", "/health/", "/metrics/", "/openapi.json/"]
PATHS += ["/positions/", "/orders/", "/trades/", "/docs/", "/docs/assets/", "/nope/", "//health"]
HOSTS = ["testserver", "evil.example", "evil.example:1/x", "127.0.0.1:1", "[::1]", "a b"]


@pytest.mark.parametrize("host", HOSTS)
def test_no_path_is_answered_with_a_redirect(client: TestClient, host: str) -> None:
    for path in PATHS:
        for method in ("GET", "POST"):
            response = client.request(
                method, path, headers={"host": host}, json=MINDA_BUY, follow_redirects=False
            )
            assert not response.is_redirect, (method, path, response.headers)
            assert "location" not in response.headers
            assert host not in response.text or host == "testserver"


def test_bytes_that_are_not_utf8_are_no_order_id(client: TestClient) -> None:
    replaced = "x\ufffd"  # what %FF decodes to when bad bytes are replaced
    posted = client.post("/order", json={**MINDA_BUY, "ORDER_ID": replaced})
    assert posted.status_code == 200
    top = posted.json()["sequence"]
    assert client.get(f"/orders/{quote(replaced)}?min_sequence={top}").status_code == 200
    response = client.get(f"/orders/x%FF?min_sequence={top}")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown order"
