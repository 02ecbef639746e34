"""GET /stream against a real server: filters, resume, restart, slow and many subscribers, auth."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.e2e.sse import Event, Listener, orders_of
from tests.support import TOKEN, Server, example_server, get_all


def order(
    strategy: str, instrument: str, position: str, order_id: str, **more: Any
) -> dict[str, Any]:
    return {
        "STRATEGY": strategy,
        "INSTRUMENT": instrument,
        "POSITION": position,
        "ORDER_ID": order_id,
        **more,
    }


WORKED = [
    order("STRATEGY_B", "ACC", "BUY", "s-1", QUANTITY=2, PRICE="10.5"),  # Holland and Kamryn
    order("STRATEGY_A", "INFY", "BUY", "s-2"),  # Holland Proctor
    order("STRATEGY_D", "NTPC", "BUY", "s-3"),  # Kamryn Li
    order("STRATEGY_B", "ACC", "SELL", "s-4", PRICE="11.25"),  # both close
    order("STRATEGY_B", "MINDA", "SELL", "s-5"),  # refused: nothing open
]


def post_all(server: Server, orders: list[dict[str, Any]], **kw: Any) -> list[dict[str, Any]]:
    answers = []
    for body in orders:
        response = httpx.post(f"{server.url}/order", json=body, timeout=30, **kw)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def ids(events: list[Event]) -> list[int]:
    return [n for _, n, _ in events]


def test_live_events_carry_the_answers_in_store_order(embedded_server: Server) -> None:
    listener = Listener(f"{embedded_server.url}/stream").start()
    answers = post_all(embedded_server, WORKED)
    events = listener.wait_for(lambda got: len(orders_of(got)) == len(WORKED))
    assert ids(events) == sorted(set(ids(events)))  # strictly increasing
    placed = [(data, n) for kind, n, data in events if kind == "order"]
    for (data, n), answer in zip(placed, answers, strict=True):
        assert n == answer["sequence"]
        received_at = data.pop("received_at")
        assert data == answer  # exactly what POST /order answered
        assert received_at.startswith("20")
    positions = [(d["user"], d["instrument"], d["action"]) for k, _, d in events if k == "position"]
    assert positions == [
        ("Holland Proctor", "ACC", "opened"),
        ("Kamryn Li", "ACC", "opened"),
        ("Holland Proctor", "INFY", "opened"),
        ("Kamryn Li", "NTPC", "opened"),
        ("Holland Proctor", "ACC", "closed"),
        ("Kamryn Li", "ACC", "closed"),
    ]
    # With their numbers: (11.25 - 10.5) x 2 realised on each close; s-2 gave no price.
    numbers = [
        (d["quantity"], d["price"], d["entry_price"], d["realised_pnl"])
        for k, _, d in events
        if k == "position"
    ]
    assert numbers == [
        ("2", "10.5", None, None),
        ("2", "10.5", None, None),
        ("1", None, None, None),
        ("1", None, None, None),
        ("2", "11.25", "10.5", "1.5"),
        ("2", "11.25", "10.5", "1.5"),
    ]
    assert [(d["quantity"], d["price"]) for d, _ in placed][:1] == [(2, "10.5")]
    # Each position event comes before the order that made it, as in the store.
    by_order = {d["order_id"]: n for k, n, d in events if k == "order"}
    assert all(n < by_order[d["order_id"]] for k, n, d in events if k == "position")


def test_filters(embedded_server: Server) -> None:
    base = f"{embedded_server.url}/stream"
    kamryn = Listener(f"{base}?user=Kamryn%20Li&types=order,position").start()
    acc = Listener(f"{base}?instrument=ACC,NTPC&types=position").start()
    strategy_a = Listener(f"{base}?strategy=STRATEGY_A").start()
    post_all(embedded_server, WORKED)
    done = Listener(f"{base}?after=0&types=order").start()
    done.wait_for(lambda got: len(got) == len(WORKED))
    post_all(embedded_server, [order("STRATEGY_A", "INFY", "SELL", "s-last")])
    strategy_a.wait_for(lambda got: "s-last" in orders_of(got))
    seen = kamryn.wait_for(lambda got: "s-5" in orders_of(got))
    # Kamryn Li is in the decisions of every STRATEGY_B and STRATEGY_D order, refused or not.
    assert orders_of(seen) == ["s-1", "s-3", "s-4", "s-5"]
    assert {d["user"] for k, _, d in seen if k == "position"} == {"Kamryn Li"}
    got = acc.wait_for(lambda got: len(got) == 5)
    assert {(k, d["instrument"]) for k, _, d in got} == {("position", "ACC"), ("position", "NTPC")}
    assert [d["order_id"] for k, _, d in strategy_a.events if k == "order"] == ["s-2", "s-last"]
    assert {d["strategy"] for _, _, d in strategy_a.events} == {"STRATEGY_A"}


def test_resume_by_last_event_id_and_after_gives_the_rest_once(embedded_server: Server) -> None:
    post_all(embedded_server, WORKED)
    everything = Listener(f"{embedded_server.url}/stream?after=0").start()
    full = everything.wait_for(lambda got: len(orders_of(got)) == len(WORKED))
    middle = full[len(full) // 2][1]
    by_header = Listener(
        f"{embedded_server.url}/stream", headers={"Last-Event-ID": str(middle)}
    ).start()
    by_after = Listener(f"{embedded_server.url}/stream?after={middle}").start()
    post_all(embedded_server, [order("STRATEGY_A", "INFY", "SELL", "s-6")])
    for listener in (everything, by_header, by_after):
        listener.wait_for(lambda got: "s-6" in orders_of(got))
    rest = [e for e in everything.events if e[1] > middle]
    assert by_header.events == rest
    assert by_after.events == rest
    # Profile events from the start-up import are in the store too.
    assert [k for k, _, _ in full[:4]] == ["profile"] * 4


def test_bad_parameters_are_4xx_json(embedded_server: Server) -> None:
    url = f"{embedded_server.url}/stream"
    for query in ("types=order,trade", "user=a%00b", "after=-1", "colour=red", "after=x"):
        response = httpx.get(f"{url}?{query}", timeout=10)
        assert response.status_code == 422, query
        assert response.json()["error"] == "bad query parameter"
    response = httpx.get(url, headers={"Last-Event-ID": "seven"}, timeout=10)
    assert response.status_code == 422
    assert "Last-Event-ID" in response.json()["fields"]
    response = httpx.get(f"{url}?after=999999", timeout=10)
    assert response.status_code == 404
    assert "after" in response.json()["fields"]


def test_across_a_restart_every_event_once_in_order(embedded_server: Server) -> None:
    first = Listener(f"{embedded_server.url}/stream?after=0").start()
    acked = post_all(embedded_server, WORKED[:3])
    before = first.wait_for(lambda got: len(orders_of(got)) == 3)
    embedded_server.kill()
    assert first.done.wait(30)
    embedded_server.start()
    acked += post_all(embedded_server, WORKED[3:])
    last = before[-1][1]
    second = Listener(f"{embedded_server.url}/stream", headers={"Last-Event-ID": str(last)}).start()
    after = second.wait_for(lambda got: len(orders_of(got)) == 2)
    events = before + after
    assert ids(events) == sorted(set(ids(events)))
    top = acked[-1]["sequence"]
    logged = get_all(embedded_server, "/orders", "orders", top)
    assert orders_of(events) == [o["order_id"] for o in logged]
    # The positions the stream opened and closed are the open positions the read side has.
    open_now: set[tuple[str, str, str]] = set()
    for kind, _, data in events:
        if kind == "position":
            key = (data["user"], data["strategy"], data["instrument"])
            if data["action"] == "opened":
                open_now.add(key)
            else:
                open_now.remove(key)
    positions = httpx.get(
        f"{embedded_server.url}/positions", params={"min_sequence": top}, timeout=10
    ).json()["positions"]
    assert open_now == {(p["user"], p["strategy"], p["instrument"]) for p in positions}


def test_heartbeat_comments_keep_an_idle_stream_open(
    make_server: Callable[[str], Server], server_env: dict[str, str]
) -> None:
    server_env["LEDGER_STREAM_HEARTBEAT"] = "0.2"
    server = make_server("embedded")
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", f"{server.url}/stream") as response,
    ):
        lines = response.iter_lines()
        assert next(lines) == "retry: 2000"
        pings = 0
        for line in lines:
            if line.startswith(": ping"):
                pings += 1
                if pings == 2:
                    break


def test_auth_applies_to_the_stream(
    make_server: Callable[[str], Server], server_env: dict[str, str]
) -> None:
    server_env["LEDGER_API_TOKEN"] = TOKEN
    server = make_server("embedded")
    refused = httpx.get(f"{server.url}/stream", timeout=10)
    assert refused.status_code == 401
    assert refused.json()["error"] == "missing or wrong bearer token"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    listener = Listener(f"{server.url}/stream", headers=bearer).start()
    post_all(server, WORKED[:1], headers=bearer)
    assert orders_of(listener.wait_for(lambda got: len(orders_of(got)) == 1)) == ["s-1"]


def test_a_reader_that_stops_reading_is_disconnected_and_others_carry_on(
    make_server: Callable[[str], Server], profile_file: Path, tmp_path: Path
) -> None:
    # 2,000 followers of one strategy: each order makes ~0.4 MB of events.
    followers = {f"user-{n:04d}": {"STRATEGY_Z": ["ZZ"]} for n in range(2000)}
    profile_file.write_text(json.dumps({**json.loads(profile_file.read_text()), **followers}))
    server = make_server("embedded")
    # A client that reads nothing: its socket buffers fill, then its queue on the server.
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", server.port))
    stuck.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    listener = Listener(f"{server.url}/stream?types=order").start()
    wanted = [order("STRATEGY_Z", "ZZ", ("BUY", "SELL")[n % 2], f"big-{n}") for n in range(60)]
    post_all(server, wanted)
    got = listener.wait_for(lambda got: len(got) == len(wanted), timeout=120)
    assert orders_of(got) == [o["ORDER_ID"] for o in wanted]
    # By now the stuck client's queue overflowed and its connection was closed.
    stuck.settimeout(30)
    try:
        while stuck.recv(2**16):
            pass
    except ConnectionResetError:
        pass  # closed without flushing: what the server does to a stuck client
    stuck.close()
    log = "".join(f.read_text() for f in (tmp_path / "logs").glob("log_*.log"))
    assert log.count("a stream subscriber fell behind") == 1


def test_a_thousand_subscribers_each_receive_every_matching_event(
    embedded_server: Server,
) -> None:
    many = 1000
    host, port = "127.0.0.1", embedded_server.port

    async def subscribe(query: str, ready: asyncio.Event, count: list[int]) -> list[int]:
        reader, writer = await asyncio.open_connection(host, port, limit=2**20)
        writer.write(f"GET /stream?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        status = await reader.readline()
        assert b" 200 " in status
        count[0] += 1
        if count[0] == many:
            ready.set()
        seen: list[int] = []
        while len(seen) < len(WORKED):
            line = await reader.readline()
            if line.startswith(b"id: "):
                seen.append(int(line[4:]))
        writer.close()
        return seen

    async def run() -> list[list[int]]:
        ready, count = asyncio.Event(), [0]
        tasks = [asyncio.create_task(subscribe("types=order", ready, count)) for _ in range(many)]
        await asyncio.wait_for(ready.wait(), 120)
        answers = await asyncio.to_thread(post_all, embedded_server, WORKED)
        results = await asyncio.wait_for(asyncio.gather(*tasks), 120)
        assert [a["sequence"] for a in answers] == results[0]
        return results

    started = time.monotonic()
    results = asyncio.run(run())
    assert len(results) == many
    assert all(seen == results[0] for seen in results)
    assert time.monotonic() - started < 300


def test_ledger_tail_prints_each_event_once_across_a_restart(embedded_server: Server) -> None:
    tail = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "tail", "--url", embedded_server.url, "--after", "0",
         "--types", "order"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    lines: list[str] = []
    changed = threading.Condition()

    def collect() -> None:
        assert tail.stdout is not None
        for text in tail.stdout:
            with changed:
                lines.append(text.rstrip("\n"))
                changed.notify_all()

    def wait_lines(n: int) -> list[str]:
        with changed:
            assert changed.wait_for(lambda: len(lines) >= n, 30), lines
            return list(lines)

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    try:
        post_all(embedded_server, WORKED[:3])
        wait_lines(3)
        embedded_server.kill()
        embedded_server.start()
        answers = post_all(embedded_server, WORKED[3:])
        printed = wait_lines(5)
    finally:
        tail.terminate()
        tail.wait(30)
        reader.join(30)
        assert tail.stdout is not None
        tail.stdout.close()
    assert [text.split()[3].rstrip(":") for text in printed] == [o["ORDER_ID"] for o in WORKED]
    assert printed[-1].startswith(f"#{answers[-1]['sequence']} order REJECTED s-5: SELL")


names = st.text(st.characters(codec="utf-8"), max_size=70)
queries = st.fixed_dictionaries(
    {},
    optional={
        "user": names,
        "strategy": names,
        "instrument": names,
        "types": st.sampled_from(["order", "position,profile", "order,trade", ""]) | names,
        "after": st.integers(-5, 2**64).map(str) | names,
        "extra": names,
    },
)


@given(query=queries, last_event_id=st.none() | st.text(st.characters(codec="ascii"), max_size=30))
@example(query={}, last_event_id=" ")  # once failed in the client: h11 refuses b" "
@example(query={}, last_event_id="")
@hsettings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_any_query_opens_a_stream_or_is_a_clear_4xx(
    stream_server: Server, query: dict[str, str], last_event_id: str | None
) -> None:
    headers = {}
    # A header value cannot start or end with whitespace (HTTP strips it; h11 refuses to send it).
    if last_event_id is not None and last_event_id.isprintable():
        headers["Last-Event-ID"] = last_event_id.strip(" \t")
    with httpx.stream(
        "GET", f"{stream_server.url}/stream", params=query, headers=headers, timeout=30
    ) as response:
        assert response.status_code in (200, 404, 422), response.read()
        if response.status_code == 200:
            assert response.headers["content-type"].startswith("text/event-stream")
            assert next(response.iter_lines()) == "retry: 2000"
        else:
            assert response.headers["content-type"] == "application/json"
            assert "error" in json.loads(response.read())


@pytest.fixture(scope="module")
def stream_server() -> Iterator[Server]:
    """One server for every generated query."""
    with example_server("ledger-stream-") as server:
        yield server


def test_streams_past_the_limit_are_refused_and_orders_still_answered(
    make_server: Callable[[str], Server], server_env: dict[str, str]
) -> None:
    server_env["LEDGER_MAX_STREAMS"] = "3"
    server_env["LEDGER_STREAM_HEARTBEAT"] = "120"  # no write finds a gone client meanwhile
    server = make_server("embedded")

    def open_stream() -> tuple[socket.socket, bytes]:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        return sock, head

    # A client that ends its side at once, before its stream could begin, is gone: its place
    # is free again well before a heartbeat (120 s) could find it gone.
    early = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    early.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    early.shutdown(socket.SHUT_WR)
    while early.recv(4096):
        pass
    early.close()
    streams = [open_stream() for _ in range(2)]
    deadline = time.monotonic() + 10
    while b" 200 " not in (third := open_stream())[1].split(b"\r\n")[0]:
        third[0].close()
        assert time.monotonic() < deadline, "the early client's place was never freed"
        time.sleep(0.05)  # polling a condition with a deadline
    streams.append(third)
    assert all(b" 200 " in head.split(b"\r\n")[0] for _, head in streams)
    refused = httpx.get(f"{server.url}/stream", timeout=10)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert "3 streams are open" in refused.json()["error"]
    assert post_all(server, WORKED[:1])[0]["order_id"] == "s-1"  # room for orders
    # One leaves, ending its side (FIN; a close() with unread bytes would send a reset):
    # its place is free again.
    streams[0][0].shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + 10  # well before a heartbeat could find it gone
    while True:
        sock, head = open_stream()
        if b" 200 " in head.split(b"\r\n")[0]:
            break
        sock.close()
        assert time.monotonic() < deadline, head
        time.sleep(0.05)
    for s, _ in streams:
        s.close()
    sock.close()
