"""Silent, slow and keep-alive clients against a real uvicorn server run with our config."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import anyio.to_thread
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

import ledger.http.server as http_server
from ledger.logs import Throttled
from ledger.overrides import refusals, uvicorn_http
from tests.support import free_port

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@dataclass
class Running:
    """A server on a thread, and the gate its /gate requests wait on."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str
    port: int
    gate: threading.Event

    def connect(self) -> socket.socket:
        """A raw TCP connection to the server."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def in_flight(self, count: int, within: float = 10) -> None:
        """Wait until `count` requests are running in the server."""
        deadline = time.monotonic() + within
        while len(self.server.server_state.tasks) < count:
            assert time.monotonic() < deadline, f"{count} requests never got in flight"
            time.sleep(0.01)  # polling a condition with a deadline


def make_app(gate: threading.Event) -> Starlette:
    """`/` answers the client's port (to tell connections apart); `/gate` waits for the gate."""

    async def port(request: Request) -> PlainTextResponse:
        assert request.client is not None
        return PlainTextResponse(str(request.client.port))

    async def gated(request: Request) -> PlainTextResponse:
        opened = await anyio.to_thread.run_sync(gate.wait, 30)
        return PlainTextResponse("open" if opened else "timed out")

    async def drip(request: Request) -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            yield b"first "
            await anyio.to_thread.run_sync(gate.wait, 30)
            yield b"last"

        return StreamingResponse(parts())

    async def big(request: Request) -> PlainTextResponse:
        return PlainTextResponse("x" * 256 * 1024)

    return Starlette(
        routes=[Route("/", port), Route("/gate", gated), Route("/drip", drip), Route("/big", big)]
    )


@pytest.fixture
def start() -> Iterator[Callable[..., Running]]:
    """Start servers with uvicorn_config(**limits); stop them afterwards."""
    running: list[Running] = []

    def run(**limits: float) -> Running:
        gate = threading.Event()
        port = free_port()
        config = http_server.uvicorn_config(make_app(gate), port=port, log_config=None, **limits)  # type: ignore[arg-type]
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        served = Running(server, thread, f"http://127.0.0.1:{port}", port, gate)
        running.append(served)
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)  # polling a condition with a deadline
        return served

    yield run
    for served in running:
        served.gate.set()
        served.server.should_exit = True
    for served in running:
        served.thread.join(timeout=15)
        assert not served.thread.is_alive()


def closed_by_server(sock: socket.socket, deadline: float) -> float | None:
    """When the server closed `sock` (monotonic time), or None if it is open at `deadline`."""
    for _ in range(1000):  # bound: each turn reads data or ends
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sock.settimeout(remaining)
        try:
            if sock.recv(4096) == b"":
                return time.monotonic()
        except TimeoutError:
            return None
        except ConnectionResetError:
            return time.monotonic()
    raise AssertionError("the server kept sending")


def read_response(sock: socket.socket) -> bytes:
    """One whole response to a request for `/` (its body is a port number, a few bytes)."""
    data = b""
    for _ in range(100):
        head, _, body = data.partition(b"\r\n\r\n")
        if body:
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            if len(body) == length:
                return data
        chunk = sock.recv(4096)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    raise AssertionError(f"no whole response: {data!r}")


def trickle(sock: socket.socket, payload: bytes, every: float, within: float) -> float | None:
    """Send `payload` a byte at a time, one per `every` s; when the server closed, or None."""
    started = time.monotonic()
    for byte in payload:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic()
        # Waiting for the server to close is the pause between bytes.
        closed = closed_by_server(sock, min(time.monotonic() + every, started + within))
        if closed is not None or time.monotonic() >= started + within:
            return closed
    return None


def test_silent_flood_is_closed_and_others_are_served(start: Callable[..., Running]) -> None:
    header_timeout = 1.0
    served = start(max_connections=50, header_timeout=header_timeout)
    with contextlib.ExitStack() as stack:
        silent = []
        for _ in range(60):
            opened = time.monotonic()
            silent.append((stack.enter_context(served.connect()), opened))

        # Meanwhile: stock uvicorn with limit_concurrency=50 answers 503 here.
        assert httpx.get(served.url, timeout=5).status_code == 200

        for sock, opened in silent:
            closed = closed_by_server(sock, opened + header_timeout + 1.5)
            assert closed is not None, "a silent connection outlived header_timeout"
            assert closed - opened <= header_timeout + 1.5
        assert httpx.get(served.url, timeout=5).status_code == 200


@pytest.mark.parametrize("after_a_request", [False, True], ids=["first-request", "keep-alive"])
@pytest.mark.parametrize(
    "payload",
    [b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 200, b"\r\n" * 200],
    ids=["head", "blank-lines"],
)
def test_slowloris_is_cut_off_by_the_header_timeout(
    start: Callable[..., Running], payload: bytes, after_a_request: bool
) -> None:
    header_timeout = 1.0
    served = start(header_timeout=header_timeout, timeout_keep_alive=30)
    with served.connect() as sock:
        if after_a_request:
            sock.sendall(REQUEST)
            assert read_response(sock).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        closed = trickle(sock, payload, every=0.3, within=header_timeout + 2)
        assert closed is not None, "a slowloris outlived header_timeout"
        # Cut off by the head timer (not keep-alive, 30 s) and not before it.
        assert header_timeout - 0.1 <= closed - started <= header_timeout + 1


def test_keep_alive_client_is_not_cut_off(start: Callable[..., Running]) -> None:
    header_timeout = 0.5
    served = start(header_timeout=header_timeout, timeout_keep_alive=30)
    with httpx.Client(timeout=5) as client:
        ports = set()
        for _ in range(4):
            response = client.get(served.url)
            assert response.status_code == 200
            ports.add(response.text)
            # Idle longer than header_timeout between requests: until the server has closed
            # a silent connection opened now, which it does header_timeout later.
            with served.connect() as probe:
                assert closed_by_server(probe, time.monotonic() + header_timeout + 2) is not None
        assert len(ports) == 1, "the requests did not share one connection"


def test_connections_with_requests_in_flight_are_not_evicted(
    start: Callable[..., Running],
) -> None:
    served = start(max_connections=3, header_timeout=30)
    with ThreadPoolExecutor(2) as pool, contextlib.ExitStack() as stack:
        gated: list[Future[httpx.Response]] = [
            pool.submit(httpx.get, f"{served.url}/gate", timeout=30) for _ in range(2)
        ]
        served.in_flight(2)
        # Full with two busy connections and an idle one: each newcomer closes the idle one.
        previous = stack.enter_context(served.connect())
        for _ in range(3):
            newcomer = stack.enter_context(served.connect())
            assert closed_by_server(previous, time.monotonic() + 5) is not None
            previous = newcomer
        assert httpx.get(served.url, timeout=5).status_code == 200
        served.gate.set()
        assert [f.result(timeout=30).text for f in gated] == ["open", "open"]


def test_a_newcomer_is_closed_when_every_connection_is_busy(
    start: Callable[..., Running],
) -> None:
    served = start(max_connections=2, header_timeout=30)
    with ThreadPoolExecutor(2) as pool:
        gated = [pool.submit(httpx.get, f"{served.url}/gate", timeout=30) for _ in range(2)]
        served.in_flight(2)
        with served.connect() as newcomer:
            assert closed_by_server(newcomer, time.monotonic() + 5) is not None
        served.gate.set()
        assert [f.result(timeout=30).status_code for f in gated] == [200, 200]
    assert httpx.get(served.url, timeout=5).status_code == 200


def test_the_bound_counts_requests_in_flight_not_connections(
    start: Callable[..., Running],
) -> None:
    served = start(max_connections=50, max_requests=2, header_timeout=30)
    with contextlib.ExitStack() as stack:
        for _ in range(10):
            stack.enter_context(served.connect())
        assert httpx.get(served.url, timeout=5).status_code == 200  # idle ones do not count
        with ThreadPoolExecutor(2) as pool:
            gated = [pool.submit(httpx.get, f"{served.url}/gate", timeout=30) for _ in range(2)]
            served.in_flight(2)
            refused = httpx.get(served.url, timeout=5)
            assert refused.status_code == 503
            # JSON, as every error of the service, with when to come back.
            assert refused.headers["content-type"] == "application/json"
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"] == "busy"
            assert "too many requests in flight" in refused.json()["retry"]
            served.gate.set()
            assert [f.result(timeout=30).status_code for f in gated] == [200, 200]
        assert httpx.get(served.url, timeout=5).status_code == 200


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # TLS to a plain port
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\n\r\n",
    ],
)
def test_a_malformed_request_gets_a_json_400(
    start: Callable[..., Running],
    garbage: bytes,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fresh = Throttled(refusals.MALFORMED_LINE, logger=refusals.log)  # this test's minute alone
    monkeypatch.setattr(refusals, "MALFORMED", fresh)
    served = start()
    with caplog.at_level("WARNING"):
        for _ in range(20):  # a flood of them writes one line, not one each
            with served.connect() as sock:
                sock.sendall(garbage)
                answer = read_response(sock)
                assert closed_by_server(sock, time.monotonic() + 5) is not None
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400 ")
            assert b"content-type: application/json" in head.lower()
            assert json.loads(body) == {"error": "malformed HTTP request"}
        assert httpx.get(served.url, timeout=5).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    # The first is written at once; the next 19 wait for the minute's end (after the test).
    assert len(lines) == 1, lines
    assert lines[0].startswith("1 request(s) not read (not HTTP")


def read_until_closed(sock: socket.socket, within: float = 10) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(within)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def refused_once(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """A wait for the server's first refusal from now on (its line is written at once)."""
    fresh = Throttled(refusals.MALFORMED_LINE, logger=refusals.log)
    monkeypatch.setattr(refusals, "MALFORMED", fresh)

    def wait() -> None:
        deadline = time.monotonic() + 10
        while fresh.last < 0:
            assert time.monotonic() < deadline, "nothing was refused"
            time.sleep(0.01)  # polling a condition with a deadline

    return wait


@pytest.mark.parametrize("path", ["/gate", "/drip"])
def test_a_malformed_request_is_refused_after_the_answers_before_it(
    start: Callable[..., Running], path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uvicorn wrote its 400 at once: over an answer not yet written (an order booked, its
    # client told 400), or inside a body being sent.
    served = start()
    refused = refused_once(monkeypatch)
    with served.connect() as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        served.in_flight(1)
        sock.sendall(b"\x16\x03\x01 not HTTP\r\n\r\n")
        refused()  # read and refused while the answer before it is still to come
        served.gate.set()
        received = read_until_closed(sock)
    first, _, rest = received.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 ")
    if path == "/gate":
        body, refused = rest[:4], rest[4:]
        assert body == b"open"
    else:  # chunked: "first ", then "last", then the last chunk
        body, _, refused = rest.partition(b"0\r\n\r\n")
        assert body == b"6\r\nfirst \r\n4\r\nlast\r\n"
    assert refused.startswith(b"HTTP/1.1 400 ")
    assert refused.endswith(b'{"error":"malformed HTTP request"}')


@pytest.mark.parametrize(
    "opening",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ",
        b"GET /aaaa",
        # A chunked body's trailer section is read as headers are (an endless one: 1.5 GB).
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-T: ",
    ],
)
def test_a_head_over_the_limit_is_refused_431(
    start: Callable[..., Running], opening: bytes
) -> None:
    served = start()
    with served.connect() as sock:
        sock.sendall(opening)
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            for _ in range(3 * uvicorn_http.HEAD_LIMIT // 65536):  # on past the limit
                sock.sendall(b"a" * 65536)
        received = read_until_closed(sock)
    # After the answer to a request read whole before its trailer, if any.
    assert received.split(b"\r\n\r\n")[-2].split(b"HTTP/1.1 ")[-1].startswith(b"431 ")
    assert received.endswith(b'{"error":"request head too large"}')
    assert httpx.get(served.url, timeout=5).status_code == 200


@pytest.mark.parametrize(
    "upgrade",
    [
        b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n",
    ],
)
def test_an_upgrade_is_answered_as_http_then_closed(
    start: Callable[..., Running],
    upgrade: bytes,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(refusals, "UPGRADES", Throttled(refusals.UPGRADE_LINE, logger=refusals.log))
    served = start()
    with caplog.at_level("DEBUG"):
        for _ in range(5):
            with served.connect() as sock:
                # Another request behind it cannot be read: the connection closes after one.
                request = b"GET / HTTP/1.1\r\nHost: x\r\n" + upgrade + b"\r\n"
                sock.sendall(request + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                received = read_until_closed(sock)
            assert received.startswith(b"HTTP/1.1 200 ")
            assert received.count(b"HTTP/1.1") == 1
            assert b"connection: close" in received.lower()
    lines = [  # uvicorn wrote a warning (two for WebSocket, without the package) each
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING or r.name == "ledger.http.server"
    ]
    assert len(lines) == 1, lines  # one a minute, with a count: not a line or two each
    assert lines[0].startswith("1 request(s) asked for a protocol upgrade")


def test_an_upgrade_with_a_body_is_refused_not_read_as_empty(
    start: Callable[..., Running],
) -> None:
    # httptools reads nothing after an upgrade's head: its app read an empty body (an order
    # sent by `curl --http2 -d` was answered 422 "not valid JSON").
    served = start()
    with served.connect() as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"  # answered first
            b"POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nContent-Length: 2\r\n\r\n{}"
        )
        received = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 200 ")
    assert received.count(b"HTTP/1.1 ") == 2  # not the app's 405 to an empty POST
    refusal = received[received.rindex(b"HTTP/1.1 ") :]
    assert refusal.startswith(b"HTTP/1.1 400 ")
    assert b"cannot ask for a protocol upgrade" in refusal


def test_requests_pipelined_past_the_bound_are_refused_429(start: Callable[..., Running]) -> None:
    # Each request read costs ~2.5 KB until answered, and uvicorn reads all a read holds:
    # 100,000 pipelined in one send took a worker from 196 to 443 MB.
    served = start()
    sent = uvicorn_http.MAX_PIPELINED + 40
    with served.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * sent)
        received = read_until_closed(sock)
    assert received.count(b"HTTP/1.1 200 ") == uvicorn_http.MAX_PIPELINED
    refusal = received[received.rindex(b"HTTP/1.1 ") :]
    assert refusal.startswith(b"HTTP/1.1 429 ")
    assert b"too many requests sent ahead of their answers" in refusal


def test_a_client_that_reads_nothing_of_its_answers_is_cut_off(
    start: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only answers over 64 KiB had a deadline (ledger.http.limits): 300 small ones pipelined
    # and never read held a connection, a request in flight and ~4 MB of buffers for good.
    monkeypatch.setattr(uvicorn_http, "STALL", 0.5)
    served = start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", served.port))
    with sock:
        # ~10 MB of answers: more than the kernel's buffers take (4 MB at most here).
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 40)
        served.in_flight(1)  # connected and answering
        deadline = time.monotonic() + 20
        while served.server.server_state.connections:
            assert time.monotonic() < deadline, "the connection was never cut"
            time.sleep(0.05)  # polling a condition with a deadline
    assert httpx.get(served.url, timeout=5).status_code == 200


def test_an_upgrade_with_an_empty_body_is_answered(start: Callable[..., Running]) -> None:
    served = start()
    with served.connect() as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
            b"Content-Length: 00\r\n\r\n"
        )
        assert read_until_closed(sock).startswith(b"HTTP/1.1 200 ")
