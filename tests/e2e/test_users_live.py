"""Users and strategies against the real server: two writer processes, the CLI, the model."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ledger.cli import main
from ledger.wire import partition
from tests.roster_model import check
from tests.support import EXAMPLE_PROFILES, Server, free_port


@pytest.fixture
def two_writers(make_server: Callable[[str], Server], server_env: dict[str, str]) -> Server:
    """A server whose strategies are split over two writer processes."""
    server_env["LEDGER_WRITERS"] = "2"
    return make_server("embedded")


def test_cli_subscribes_and_unsubscribes(
    two_writers: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ["--url", two_writers.url]
    assert main(["subscribe", "Kamryn Li", "STRATEGY_A", "INFY", "ACC", *url]) == 0
    assert json.loads(capsys.readouterr().out)["change"] == "taken_up"
    assert main(["users", "Kamryn Li", *url]) == 0
    assert json.loads(capsys.readouterr().out)["strategies"]["STRATEGY_A"] == ["INFY", "ACC"]
    # A multiplier given stays when only the instruments change.
    assert main(["subscribe", "Kamryn Li", "STRATEGY_A", "INFY", "--multiplier", "3", *url]) == 0
    assert json.loads(capsys.readouterr().out)["multiplier"] == "3"
    assert main(["subscribe", "Kamryn Li", "STRATEGY_A", "INFY", "ACC", *url]) == 0
    assert json.loads(capsys.readouterr().out)["multiplier"] == "3"
    assert (
        main(["subscribe", "Kamryn Li", "STRATEGY_A", "INFY", "ACC", "--multiplier", "1", *url])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["multiplier"] == "1"
    assert main(["unsubscribe", "Kamryn Li", "STRATEGY_A", *url]) == 0
    assert json.loads(capsys.readouterr().out)["change"] == "dropped"
    assert main(["unsubscribe", "Kamryn Li", "STRATEGY_A", *url]) == 1
    assert "404" in capsys.readouterr().err
    assert main(["users", *url]) == 0
    assert json.loads(capsys.readouterr().out) == EXAMPLE_PROFILES
    assert main(["unsubscribe", "Kamryn Li", *url]) == 0
    assert len(json.loads(capsys.readouterr().out)["dropped"]) == 2
    assert main(["users", "--url", "http://127.0.0.1:9"]) == 1  # nobody listens


def test_documents_and_users_split_over_the_writers(two_writers: Server) -> None:
    strategies = [f"S{n}" for n in range(8)]
    assert {partition(s, 2) for s in strategies} == {0, 1}
    document = {"U": {s: ["X"] for s in strategies}, "V": {"S0": ["Y"]}}
    url = two_writers.url
    applied = httpx.post(f"{url}/profiles", json=document, timeout=30).json()
    assert sum(c["change"] == "dropped" for c in applied["changes"]) == 4  # the file's books
    assert sum(c["change"] == "taken_up" for c in applied["changes"]) == 9
    assert httpx.get(f"{url}/users", timeout=30).json() == document
    dropped = httpx.delete(f"{url}/users/U", timeout=30).json()
    assert sorted(d["strategy"] for d in dropped["dropped"]) == strategies
    assert httpx.get(f"{url}/users", timeout=30).json() == {"V": {"S0": ["Y"]}}


def test_many_clients_agree_with_the_model_across_writers(two_writers: Server) -> None:
    url = two_writers.url
    strategies = ["STRATEGY_A", "STRATEGY_B", "STRATEGY_C", "STRATEGY_D"]
    assert {partition(s, 2) for s in strategies} == {0, 1}
    users = ["Holland Proctor", "Kamryn Li", "Third"]
    instruments = ["GRASIM", "INFY", "MINDA", "ACC", "NTPC"]
    answers: list[dict[str, Any]] = []
    failures: list[str] = []

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, timeout=30) as http:
            for n in range(40):
                strategy = rng.choice(strategies)
                if rng.random() < 0.7:
                    body = {
                        "STRATEGY": strategy,
                        "INSTRUMENT": rng.choice(instruments),
                        "POSITION": rng.choice(["BUY", "SELL"]),
                        "ORDER_ID": f"c{seed}-{n}",
                    }
                    response = http.post("/order", json=body)
                elif rng.random() < 0.7:
                    path = f"/users/{rng.choice(users)}/strategies/{strategy}"
                    chosen = rng.sample(instruments, rng.randint(1, 3))
                    response = http.put(path, json={"instruments": chosen})
                else:
                    response = http.delete(f"/users/{rng.choice(users)}/strategies/{strategy}")
                if response.status_code == 200:
                    answers.append(response.json())
                elif response.status_code != 404:
                    failures.append(f"{response.status_code} {response.text}")

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert check(EXAMPLE_PROFILES, answers) > 200


def test_two_server_processes_changing_one_user_lose_no_change(
    embedded_server: Server,
) -> None:
    first = embedded_server
    args = list(first.args)  # the same embedded database (same data directory)
    args[args.index("--port") + 1] = str(free_port())
    second = Server(args, first.env, first.log.with_name("second.log"))
    second.start()
    try:
        answers: list[dict[str, Any]] = []
        lists = [["ACC"], ["INFY", "ACC"], ["NTPC"], ["GRASIM", "MINDA"]]

        def change(server: Server, prefix: str) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for n in range(12):
                    # A book of its own (the roster grows through both) and one both change.
                    own = client.put(
                        f"/users/Same/strategies/{prefix}{n}", json={"instruments": ["I"]}
                    )
                    shared = client.put(
                        "/users/Same/strategies/SHARED", json={"instruments": lists[n % 4]}
                    )
                    assert own.status_code == shared.status_code == 200, (own.text, shared.text)
                    answers.extend([own.json(), shared.json()])

        threads = [
            threading.Thread(target=change, args=(s, p)) for s, p in ((first, "A"), (second, "B"))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        written = [a for a in answers if a["sequence"] is not None]
        assert len({a["sequence"] for a in written}) == len(written)  # one event each
        last = max((a for a in written if a["strategy"] == "SHARED"), key=lambda a: a["sequence"])
        wanted = {f"{p}{n}": ["I"] for p in "AB" for n in range(12)}
        wanted["SHARED"] = last["instruments"]
        for server in (first, second):
            strategies = httpx.get(f"{server.url}/users/Same", timeout=30).json()["strategies"]
            assert strategies == wanted
    finally:
        second.stop()
