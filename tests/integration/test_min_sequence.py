"""min_sequence: 404 at once when the store does not hold it yet, 503 only for a real wait."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ledger.http.app import create_app
from ledger.settings import Settings

MINDA_BUY = {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY"}
READS = ["/orders", "/positions", "/trades", "/orders/o1"]


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize("beyond", [1, 1000, 2**63 - 1])
def test_beyond_the_store_is_404_at_once(client: TestClient, path: str, beyond: int) -> None:
    top: int = client.post("/order", json={**MINDA_BUY, "ORDER_ID": "o1"}).json()["sequence"]
    wanted = beyond if beyond == 2**63 - 1 else top + beyond
    started = time.monotonic()
    response = client.get(path, params={"min_sequence": wanted})
    assert time.monotonic() - started < 1  # nothing to wait for
    assert response.status_code == 404, response.text
    body = response.json()
    assert "not in the store" in body["error"]
    assert str(top) in body["fields"]["min_sequence"]
    assert client.get(path, params={"min_sequence": top}).status_code == 200


@pytest.fixture
def stalled(settings: Settings, profile_file: Path) -> Iterator[TestClient]:
    """The app with no projection running: the read models never catch up."""
    app = create_app(settings.replace(profiles=profile_file, projections="off"))
    with TestClient(app) as test_client:
        yield test_client


def test_a_real_wait_that_runs_out_is_503(stalled: TestClient) -> None:
    top: int = stalled.post("/order", json=MINDA_BUY).json()["sequence"]
    started = time.monotonic()
    response = stalled.get("/orders", params={"min_sequence": top})
    assert time.monotonic() - started >= 1.9
    assert response.status_code == 503
    assert "retry" in response.json()["error"]
