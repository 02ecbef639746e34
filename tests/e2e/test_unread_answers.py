"""Long answers that clients do not read: bounded bytes held, cut off when stalled."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledger.http.lanes import PiecesResponse
from ledger.http.limits import AnswerBudget
from ledger.http.server import uvicorn_config
from tests.support import free_port

# Far beyond what the kernel's socket buffers take in for a client that reads nothing.
LONG = 16 * 2**20
BUDGET = 24 * 2**20  # one long answer fits, two do not
STALL = 1.0
BODY = bytes(range(256)) * (LONG // 256)


def make_app() -> Starlette:
    """GET and POST /long answer BODY; /pieces sends it in three messages; /short a few bytes."""

    async def long(request: Request) -> Response:
        return Response(BODY, media_type="application/octet-stream")

    async def pieces(request: Request) -> Response:
        third = LONG // 3
        return PiecesResponse([BODY[:third], BODY[third : 2 * third], BODY[2 * third :]])

    async def short(request: Request) -> Response:
        return Response(b"ok")

    return Starlette(
        routes=[
            Route("/long", long, methods=["GET", "POST"]),
            Route("/pieces", pieces),
            Route("/short", short),
        ],
        middleware=[Middleware(AnswerBudget, budget=BUDGET, stall=STALL)],
    )


@dataclass
class Running:
    """A server on a thread."""

    server: uvicorn.Server
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def unread(self, method: str = "GET", path: str = "/long") -> socket.socket:
        """A client that asks and reads nothing (a small receive window)."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", self.port))
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
        return sock

    def held(self, at_least: int, within: float = 10) -> None:
        """Wait until the budget holds at least `at_least` bytes."""
        budget = self.budget()
        deadline = time.monotonic() + within
        while budget.held < at_least:
            assert time.monotonic() < deadline, f"held {budget.held}, never {at_least}"
            time.sleep(0.01)  # polling a condition with a deadline

    def budget(self) -> AnswerBudget:
        """The running app's AnswerBudget middleware."""
        app = self.server.config.loaded_app
        while not isinstance(app, AnswerBudget):
            app = getattr(app, "app", None) or app.middleware_stack  # type: ignore[union-attr]
        return app


@pytest.fixture
def running() -> Iterator[Running]:
    port = free_port()
    config = uvicorn_config(make_app(), port=port, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)  # polling a condition with a deadline
    yield Running(server, port)
    server.should_exit = True
    thread.join(timeout=15)
    assert not thread.is_alive()


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes `sock` within `seconds` (reading what it sent meanwhile)."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            if sock.recv(2**20) == b"":
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


@pytest.mark.parametrize("path", ["/long", "/pieces"])
def test_a_reader_gets_every_byte(running: Running, path: str) -> None:
    response = httpx.get(running.url + path, timeout=30)
    assert response.status_code == 200
    assert response.content == BODY
    assert running.budget().held == 0


def test_a_second_unread_long_read_is_refused_busy_but_short_ones_and_writes_go_on(
    running: Running,
) -> None:
    with running.unread():
        running.held(LONG)
        refused = httpx.get(running.url + "/long", timeout=30)
        assert refused.status_code == 503
        assert refused.json()["error"] == "busy"
        assert refused.headers["retry-after"]
        assert httpx.get(running.url + "/short", timeout=30).content == b"ok"
        # HEAD writes no body, so it holds nothing and is never refused.
        head = httpx.head(running.url + "/long", timeout=30)
        assert head.status_code == 200
        assert head.headers["content-length"] == str(LONG)
        # A write's answer is never refused: what it changed is stored already.
        written = httpx.post(running.url + "/long", timeout=30)
        assert written.status_code == 200
        assert written.content == BODY


def test_a_client_that_reads_nothing_is_cut_off_and_its_bytes_given_back(
    running: Running,
) -> None:
    with running.unread() as stalled:
        running.held(LONG)
        assert closed_within(stalled, STALL + 10)
    deadline = time.monotonic() + 10
    while running.budget().held:
        assert time.monotonic() < deadline, "the stalled answer's bytes were never given back"
        time.sleep(0.01)  # polling a condition with a deadline
    response = httpx.get(running.url + "/long", timeout=30)
    assert response.status_code == 200
    assert response.content == BODY
