"""Users and strategies at run time over HTTP: live reads, changes, their errors and their rules."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from ledger.answers import OrderOutcome, OrderRequest
from ledger.batch import Outcome
from ledger.domain import Position
from ledger.http.app import create_app
from ledger.settings import Settings
from ledger.user_answers import ChangeOutcome, ChangeRequest, Scope
from ledger.wire import WriterUnavailable
from ledger.writer import Writer
from tests.support import EXAMPLE_PROFILES, TOKEN

HOLLAND, KAMRYN = "Holland Proctor", "Kamryn Li"


def top(client: TestClient) -> int:
    sequence: int = client.get("/health").json()["sequence"]
    return sequence


def put(client: TestClient, user: str, strategy: str, instruments: list[str]) -> Any:
    path = f"/users/{quote(user, safe='')}/strategies/{quote(strategy, safe='')}"
    response = client.put(path, json={"instruments": instruments})
    assert response.status_code == 200, response.text
    return response.json()


def buy(client: TestClient, strategy: str, instrument: str, position: str = "BUY") -> Any:
    body = {"STRATEGY": strategy, "INSTRUMENT": instrument, "POSITION": position}
    return client.post("/order", json=body).json()


def test_reads_show_the_profiles_with_counts(client: TestClient) -> None:
    assert client.get("/users").json() == EXAMPLE_PROFILES
    buy(client, "STRATEGY_B", "ACC")  # opens for both users
    counted = client.get("/users?counts=true").json()
    assert counted[KAMRYN] == {"strategies": EXAMPLE_PROFILES[KAMRYN], "open_positions": 1}
    assert client.get(f"/users/{HOLLAND}").json() == {
        "user": HOLLAND,
        "strategies": EXAMPLE_PROFILES[HOLLAND],
        "open_positions": 1,
    }
    assert client.get("/strategies/STRATEGY_B").json() == {
        "strategy": "STRATEGY_B",
        "users": {HOLLAND: ["MINDA", "ACC"], KAMRYN: ["ACC"]},
        "open_positions": 2,
    }
    assert client.get("/strategies").json()["STRATEGY_D"] == {
        "users": {KAMRYN: ["NTPC"]},
        "open_positions": 0,
    }


def test_put_takes_up_changes_and_is_idempotent(client: TestClient) -> None:
    taken = put(client, KAMRYN, "STRATEGY_A", ["INFY", "INFY", "ACC"])
    assert taken["change"] == "taken_up"
    assert taken["instruments"] == ["INFY", "ACC"]
    # Live: a read right after the answer shows the change.
    assert client.get(f"/users/{KAMRYN}").json()["strategies"]["STRATEGY_A"] == ["INFY", "ACC"]
    order = buy(client, "STRATEGY_A", "ACC")
    assert order["sequence"] > taken["sequence"]
    assert order["accepted_for"] == [KAMRYN]  # decided with the change
    before = top(client)
    again = put(client, KAMRYN, "STRATEGY_A", ["ACC", "INFY"])  # same set, other order
    assert (again["change"], again["sequence"]) == ("unchanged", None)
    assert top(client) == before  # nothing written
    changed = put(client, KAMRYN, "STRATEGY_A", ["INFY"])
    assert (changed["change"], changed["kept_open"]) == ("changed", ["ACC"])
    sell = buy(client, "STRATEGY_A", "ACC", "SELL")
    assert sell["accepted_for"] == [KAMRYN]  # a kept position still closes


def test_delete_strategy_and_user(client: TestClient) -> None:
    buy(client, "STRATEGY_B", "ACC")
    dropped = client.delete(f"/users/{KAMRYN}/strategies/STRATEGY_B").json()
    assert dropped["change"] == "dropped"
    assert (dropped["instruments"], dropped["kept_open"]) == ([], ["ACC"])
    missing = client.delete(f"/users/{KAMRYN}/strategies/STRATEGY_B")
    assert missing.status_code == 404
    assert client.get("/strategies/STRATEGY_B").json()["users"] == {HOLLAND: ["MINDA", "ACC"]}
    gone = client.delete(f"/users/{HOLLAND}").json()
    assert gone["user"] == HOLLAND
    assert {d["strategy"] for d in gone["dropped"]} == {"STRATEGY_A", "STRATEGY_B"}
    assert client.delete(f"/users/{HOLLAND}").status_code == 404
    # Still known by the open position the drop kept.
    assert client.get(f"/users/{HOLLAND}").json() == {
        "user": HOLLAND,
        "strategies": {},
        "open_positions": 1,
    }
    assert client.get("/users").json() == {KAMRYN: {"STRATEGY_D": ["NTPC"]}}


def test_unknown_names_are_404_and_bad_ones_422(client: TestClient) -> None:
    assert client.get("/users/Nobody").status_code == 404
    assert client.get("/strategies/NOPE").status_code == 404
    assert client.delete("/users/Nobody").status_code == 404
    assert client.delete("/users/Nobody/strategies/STRATEGY_A").status_code == 404
    long = "x" * 65
    for response in (
        client.get(f"/users/{long}"),
        client.get("/strategies/a%01b"),
        client.delete(f"/users/{long}"),
        client.put(f"/users/{long}/strategies/S", json={"instruments": ["A"]}),
        client.put("/users/u/strategies/%7F", json={"instruments": ["A"]}),
        # Names that would read back from the store as a type tag (ledger.names.RESERVED).
        client.put("/users/_type_/strategies/S", json={"instruments": ["A"]}),
        client.put("/users/u/strategies/_data_", json={"instruments": ["A"]}),
        client.get("/users/_type_"),
    ):
        assert response.status_code == 422, response.text
        assert response.json()["fields"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[]", "body"),
        (b"{}", "instruments"),
        (b'{"instruments": "ACC"}', "instruments"),
        (b'{"instruments": [""]}', "instruments.0"),
        (b'{"instruments": ["A"], "other": 1}', "other"),
        (b'{"instruments": ["A"], "instruments": ["B"]}', "instruments"),
        (b'{"instruments": ["_type_", "_data_"]}', "instruments.0"),
        # Refused by their exponent, before a billion digits are written out.
        (b'{"instruments": ["A"], "multiplier": 1e999999999}', "multiplier"),
        (b'{"instruments": ["A"], "multiplier": 1e-999999999}', "multiplier"),
    ],
)
def test_bad_bodies_are_422(client: TestClient, body: bytes, field: str) -> None:
    before = top(client)
    response = client.put("/users/u/strategies/S", content=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["fields"]
    assert top(client) == before


def test_a_name_with_a_slash(client: TestClient) -> None:
    assert put(client, "a/b", "S/1", ["X"])["change"] == "taken_up"
    assert client.get("/users/a%2Fb").json()["strategies"] == {"S/1": ["X"]}
    assert client.get("/strategies/S%2F1").json()["users"] == {"a/b": ["X"]}


def test_post_profiles_applies_differences_and_dry_run_writes_nothing(
    client: TestClient,
) -> None:
    wanted = {HOLLAND: {"STRATEGY_A": ["GRASIM", "INFY"]}, "New": {"STRATEGY_D": ["NTPC"]}}
    before = top(client)
    dry = client.post("/profiles?dry_run=true", json=wanted).json()
    assert top(client) == before
    assert dry["dry_run"] is True and dry["sequence"] is None
    assert {(c["user"], c["strategy"], c["change"]) for c in dry["changes"]} == {
        ("New", "STRATEGY_D", "taken_up"),
        (HOLLAND, "STRATEGY_B", "dropped"),
        (KAMRYN, "STRATEGY_B", "dropped"),
        (KAMRYN, "STRATEGY_D", "dropped"),
    }
    assert dry["unchanged"] == 1
    applied = client.post("/profiles", json=wanted).json()
    assert applied["sequence"] > before
    # One writer: every change has the answer's sequence; a dry run wrote none.
    assert {c["sequence"] for c in applied["changes"]} == {applied["sequence"]}
    assert {c["sequence"] for c in dry["changes"]} == {None}
    unwritten = [{**c, "sequence": None} for c in applied["changes"]]
    assert {**applied, "dry_run": True, "sequence": None, "changes": unwritten} == dry
    assert client.get("/users").json() == wanted
    again = client.post("/profiles", json=wanted).json()
    assert (again["changes"], again["unchanged"], again["sequence"]) == ([], 2, None)


def test_a_big_document_is_committed_in_slices(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ledger.writer.SLICE_BOOKS", 2)
    buy(client, "STRATEGY_B", "ACC")  # open for both: kept open when their books go
    wanted = {f"u{n}": {"STRATEGY_A": ["ACC"], "STRATEGY_C": ["INFY"]} for n in range(5)}
    wanted[KAMRYN] = {"STRATEGY_B": ["NTPC"]}
    dry = client.post("/profiles?dry_run=true", json=wanted).json()
    before = top(client)
    applied = client.post("/profiles", json=wanted).json()
    # The same changes as one commit would make, each with its slice's sequence: the 11
    # books it lists, then the 3 it drops, two books a commit.
    assert [{**c, "sequence": None} for c in applied["changes"]] == dry["changes"]
    assert applied["unchanged"] == dry["unchanged"]
    sequences = [c["sequence"] for c in applied["changes"]]
    assert sequences == sorted(sequences) and len(set(sequences)) == 7
    assert [sequences.count(n) for n in sorted(set(sequences))] == [2] * 7
    assert before < sequences[0] and sequences[-1] == applied["sequence"] == top(client)
    assert [(c["user"], c["strategy"]) for c in applied["changes"] if c["change"] == "dropped"] == [
        (HOLLAND, "STRATEGY_A"),
        (HOLLAND, "STRATEGY_B"),
        (KAMRYN, "STRATEGY_D"),
    ]
    assert client.get("/users").json() == wanted
    again = client.post("/profiles", json=wanted).json()
    assert (again["changes"], again["unchanged"], again["sequence"]) == ([], 11, None)


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ("?dry_run=maybe", b"{}"),
        ("?other=1", b"{}"),
        ("", b'{"u": {"S": "ACC"}}'),
        ("", b'{"u": {"S": ["A"], "S": ["B"]}}'),
        ("", b'{"\\u0001": {}}'),
        ("", b"[1]"),
        ("", b'{"_type_": {"S": ["A"]}, "_data_": {"S": ["A"]}}'),
        ("", b'{"u": {"S": {"instruments": ["A"], "multiplier": 1e-999999999}}}'),
    ],
)
def test_bad_profile_documents_are_422(client: TestClient, query: str, body: bytes) -> None:
    before = top(client)
    response = client.post("/profiles" + query, content=body)
    assert response.status_code == 422, response.text
    assert top(client) == before


def test_every_endpoint_needs_the_token(locked: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    calls = [
        ("GET", "/users", None),
        ("GET", f"/users/{HOLLAND}", None),
        ("GET", "/strategies", None),
        ("GET", "/strategies/STRATEGY_A", None),
        ("PUT", "/users/u/strategies/S", {"instruments": ["A"]}),
        ("DELETE", "/users/u/strategies/S", None),
        ("DELETE", "/users/u", None),
        ("POST", "/profiles?dry_run=true", {}),
    ]
    for method, path, body in calls:
        assert locked.request(method, path, json=body).status_code == 401, path
        assert locked.request(method, path, json=body, headers=auth).status_code in (200, 404)


def test_the_file_is_applied_only_when_it_changes(
    settings: Settings, profile_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    configured = settings.replace(profiles=profile_file)
    with TestClient(create_app(configured)) as client:
        put(client, KAMRYN, "STRATEGY_A", ["INFY"])
        client.delete(f"/users/{HOLLAND}/strategies/STRATEGY_B")
        live = client.get("/users").json()
    with (
        caplog.at_level(logging.INFO, logger="ledger.bootstrap"),
        TestClient(create_app(configured)) as client,
    ):
        assert client.get("/users").json() == live  # the API's changes stand
    assert "unchanged file: not applied" in caplog.text
    changed = {KAMRYN: {"STRATEGY_D": ["NTPC", "ACC"]}}
    profile_file.write_text(json.dumps(changed))
    with TestClient(create_app(configured)) as client:
        assert client.get("/users").json() == changed  # a new file wins, as at any import
    # Same content, other key order and spacing: the same file.
    profile_file.write_text(json.dumps(changed, indent=4))
    caplog.clear()
    with (
        caplog.at_level(logging.INFO, logger="ledger.bootstrap"),
        TestClient(create_app(configured)) as client,
    ):
        put(client, "Other", "STRATEGY_A", ["ACC"])
    with TestClient(create_app(configured)) as client:
        assert client.get("/users").json() == {**changed, "Other": {"STRATEGY_A": ["ACC"]}}
    assert "unchanged file: not applied" in caplog.text


def test_openapi_describes_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/users/{user}"]) == {"get", "delete"}
    assert set(paths["/users/{user}/strategies/{strategy}"]) == {"put", "delete"}
    assert "requestBody" in paths["/users/{user}/strategies/{strategy}"]["put"]
    assert {"/users", "/strategies", "/strategies/{strategy}", "/profiles"} <= set(paths)
    params = {p["name"] for p in paths["/profiles"]["post"]["parameters"]}
    assert params == {"dry_run"}


def test_an_order_sent_during_a_big_document_waits_for_one_slice_only(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ledger.writer.SLICE_BOOKS", 2)
    writer: Writer = client.app.state.services.desk  # type: ignore[attr-defined]
    wanted = {f"u{n}": {"STRATEGY_A": ["ACC"], "STRATEGY_C": ["INFY"]} for n in range(5)}
    document = ChangeRequest(Scope.ALL, wanted)  # type: ignore[arg-type]
    order = OrderRequest("STRATEGY_A", "ACC", Position.BUY, "during")
    again = ChangeRequest(Scope.ALL, {}, dry_run=True)

    async def together() -> tuple[Outcome, Outcome, BaseException | None]:
        applying = writer.enqueue(document)  # queued first, the order right after it
        placed = writer.enqueue(order)
        refused = await asyncio.gather(writer.submit(again), return_exceptions=True)
        return await applying, await placed, refused[0] if refused else None

    applied, placed, refused = client.portal.call(together)  # type: ignore[union-attr]
    assert isinstance(applied, ChangeOutcome) and isinstance(placed, OrderOutcome)
    sequences = sorted({c.sequence for c in applied.answer.changes if c.sequence})
    assert len(sequences) == 7  # five users' ten books and Holland's and Kamryn's four: 14 / 2
    # Queued after the document, it was decided after its first slice, not after all of them.
    assert sequences[0] < placed.answer.sequence < sequences[-1]
    assert placed.answer.accepted_for == ["u0"]  # u0 took STRATEGY_A up in the first slice
    # A second document while one is applied is refused, not interleaved with it.
    assert isinstance(refused, WriterUnavailable)
    assert "another profile document or user's change is being applied" in str(refused)
