"""Changes and orders from many clients at once: every answer agrees with the model's order."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from ledger.http.app import create_app
from ledger.settings import Settings
from tests.roster_model import check

INSTRUMENTS = ["I1", "I2", "I3"]
examples = itertools.count()


def operation(rng: random.Random, users: list[str], strategies: list[str]) -> tuple[str, Any]:
    """A random order, PUT or DELETE over a few names, so that they collide often."""
    kind = rng.choice(["order", "order", "order", "put", "drop"])
    strategy = rng.choice(strategies)
    if kind == "order":
        body = {
            "STRATEGY": strategy,
            "INSTRUMENT": rng.choice(INSTRUMENTS),
            "POSITION": rng.choice(["BUY", "SELL"]),
        }
        return "POST", ("/order", body)
    path = f"/users/{rng.choice(users)}/strategies/{strategy}"
    if kind == "put":
        chosen = rng.sample(INSTRUMENTS, rng.randint(1, len(INSTRUMENTS)))
        return "PUT", (path, {"instruments": chosen})
    return "DELETE", (path, None)


def run_clients(
    clients: list[TestClient], seeds: list[int], count: int, names: str
) -> list[dict[str, Any]]:
    """Each seed is a client thread sending `count` operations round-robin over the apps."""
    users = [f"{names}-u{n}" for n in range(3)]
    strategies = [f"{names}-s{n}" for n in range(2)]
    answers: list[dict[str, Any]] = []
    failures: list[str] = []
    start = threading.Barrier(len(seeds))

    def client_thread(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()  # all at once
        for n in range(count):
            client = clients[(seed + n) % len(clients)]
            method, (path, body) = operation(rng, users, strategies)
            response = client.request(method, path, json=body)
            if response.status_code == 200:
                answers.append(response.json())
            elif not (method == "DELETE" and response.status_code == 404):
                failures.append(f"{method} {path}: {response.status_code} {response.text}")

    threads = [threading.Thread(target=client_thread, args=(seed,)) for seed in seeds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    return answers


@given(seeds=st.lists(st.integers(0, 2**32), min_size=4, max_size=8, unique=True))
@hsettings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_concurrent_orders_and_changes_agree_with_the_model(
    client: TestClient, seeds: list[int]
) -> None:
    # Each example trades names of its own: the model starts from nothing.
    answers = run_clients([client], seeds, 25, f"x{next(examples)}")
    assert check({}, answers) > 0
    # The read model holds what the last answers say.
    state = client.get("/users").json()
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for answer in sorted(
        (a for a in answers if "change" in a and a["sequence"]), key=lambda a: a["sequence"]
    ):
        latest[answer["user"], answer["strategy"]] = answer
    for (user, strategy), answer in latest.items():
        shown = state.get(user, {}).get(strategy)
        assert shown == (None if answer["change"] == "dropped" else answer["instruments"])


def two_servers(settings: Settings, profile_file: Path) -> Callable[[], TestClient]:
    return lambda: TestClient(create_app(settings.replace(profiles=profile_file)))


def test_two_servers_on_one_store_lose_no_change(settings: Settings, profile_file: Path) -> None:
    make = two_servers(settings, profile_file)
    with make() as first, make() as second:
        # The same user takes up strategies through both at once: each adds to the roster.
        taken: list[dict[str, Any]] = []

        def take_up(client: TestClient, prefix: str) -> None:
            for n in range(15):
                response = client.put(
                    f"/users/Same/strategies/{prefix}{n}", json={"instruments": [f"I{n}"]}
                )
                assert response.status_code == 200, response.text
                taken.append(response.json())

        threads = [
            threading.Thread(target=take_up, args=(first, "A")),
            threading.Thread(target=take_up, args=(second, "B")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(t["change"] == "taken_up" for t in taken)
        wanted = {f"{p}{n}": [f"I{n}"] for p in "AB" for n in range(15)}
        assert first.get("/users/Same").json()["strategies"] == wanted
        assert second.get("/users/Same").json()["strategies"] == wanted
        # Orders and changes of the same books through both: still one order of events.
        answers = run_clients([first, second], [1, 2, 3, 4, 5, 6], 20, "two")
        assert check({}, answers) > 0
