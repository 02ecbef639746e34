"""The uvicorn parts ledger/http/server.py leans on are still there; its arguments are checked."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from starlette.applications import Starlette
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from ledger.http.server import uvicorn_config
from ledger.overrides.sends import HOLD_AT_MOST, OneSendPerTurn
from ledger.overrides.uvicorn_http import (
    ENDLESS,
    RELIED_ON,
    RELIED_ON_INSTANCES,
    GuardedHttpToolsProtocol,
)


def test_relied_on_methods_exist() -> None:
    missing = [f"{owner.__name__}.{name}" for owner, name in RELIED_ON if not hasattr(owner, name)]
    assert missing == []
    parameters = list(inspect.signature(HttpToolsProtocol.__init__).parameters)
    assert parameters[:5] == ["self", "config", "server_state", "app_state", "_loop"]


def test_relied_on_instance_attributes_exist() -> None:
    config = uvicorn_config(Starlette(), log_config=None, header_timeout=2, max_connections=7)
    config.load()
    assert issubclass(config.http_protocol_class, GuardedHttpToolsProtocol)
    loop = asyncio.new_event_loop()
    try:
        state = ServerState()
        protocol = config.http_protocol_class(
            config=config, server_state=state, app_state={}, _loop=loop
        )
    finally:
        loop.close()
    live: dict[str, Any] = {
        "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol": protocol,
        "uvicorn.server.ServerState": state,
    }
    missing = [(c, a) for c, a in RELIED_ON_INSTANCES if not hasattr(live[c], a)]
    assert missing == []
    assert isinstance(state.connections, set)
    assert isinstance(state.tasks, set)
    assert (protocol.header_timeout, protocol.max_connections, protocol.max_requests) == (2, 7, 7)
    assert protocol.limit_concurrency is None  # uvicorn's connection count is not the bound


@pytest.mark.parametrize("key", ["http", "limit_concurrency", "ws"])
def test_uvicorn_config_refuses_what_it_sets_itself(key: str) -> None:
    clashing: dict[str, Any] = {key: 10}
    with pytest.raises(TypeError, match=key):
        uvicorn_config(Starlette(), **clashing)


@pytest.mark.parametrize(
    "limits", [{"header_timeout": 0}, {"max_connections": 0}, {"max_requests": 0}]
)
def test_limits_must_be_positive(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        uvicorn_config(Starlette(), **limits)  # type: ignore[arg-type]


def test_connections_send_small_writes_at_once() -> None:
    import socket
    from types import SimpleNamespace

    from ledger.overrides.uvicorn_http import no_delay
    from ledger.supervisor import _listen

    listener = _listen("127.0.0.1", 0)
    with listener, socket.create_connection(listener.getsockname()) as client:
        accepted, _ = listener.accept()
        with accepted:
            # Inherited from the listening socket, before any protocol runs.
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        plain = socket.create_connection(listener.getsockname())
        server_side, _ = listener.accept()
        with plain, server_side:
            server_side.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
            no_delay(SimpleNamespace(get_extra_info=lambda name: server_side))  # type: ignore[arg-type]
            assert server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert client.fileno() > 0
    left, right = socket.socketpair()  # a Unix socket refuses the option: no error
    with left, right:
        no_delay(SimpleNamespace(get_extra_info=lambda name: left))  # type: ignore[arg-type]


class SentBytes:
    """The socket transport's side: what it was asked to send, in order."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def writelines(self, lines: list[bytes]) -> None:
        self.sent.extend(lines)

    def write_eof(self) -> None:
        self.sent.append(b"<eof>")

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str | None:
        return None if name in ("socket", "sslcontext") else f"info {name}"


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def test_an_answer_leaves_in_one_send() -> None:
    async def scenario() -> None:
        socket_side = SentBytes()
        transport = OneSendPerTurn(socket_side, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(HEAD)  # uvicorn: the head,
        assert socket_side.sent == []  # held for what follows
        transport.write(b"{}")  # then the body
        assert socket_side.sent == [HEAD + b"{}"]
        # A long body goes straight through (flow control counts it), after its head.
        long = bytes(HOLD_AT_MOST + 1)
        transport.write(HEAD)
        transport.write(long)
        transport.write(long)
        assert socket_side.sent[1:] == [HEAD, long, long]
        transport.write(b"0\r\n\r\n")  # only heads are held: a stream's last chunk leaves now
        assert socket_side.sent[-1] == b"0\r\n\r\n"
        transport.write(HEAD)  # a head with nothing after it (a HEAD request, a stream's start)
        assert socket_side.sent[-1] == b"0\r\n\r\n"
        await asyncio.sleep(0)  # leaves at the end of this turn of the event loop
        assert socket_side.sent[-1] == HEAD
        transport.write(HEAD)
        transport.writelines([b"a", b"b"])  # what is held goes first, whichever way comes next
        transport.write(HEAD)
        transport.write_eof()
        assert socket_side.sent[-5:] == [HEAD, b"a", b"b", HEAD, b"<eof>"]
        transport.write(HEAD)
        transport.close()  # `connection: close`: what is held goes first
        assert (socket_side.sent[-1], socket_side.closed) == (HEAD, True)
        transport.write(HEAD)
        await asyncio.sleep(0)
        assert socket_side.sent[-1:] == [HEAD]  # nothing is sent once closing
        assert len(socket_side.sent) == 12
        assert transport.get_extra_info("peername") == "info peername"  # the rest: the transport's

    asyncio.run(scenario())


def test_an_aborted_connection_sends_nothing_held() -> None:
    async def scenario() -> None:
        socket_side = SentBytes()
        transport = OneSendPerTurn(socket_side, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(HEAD)
        transport.abort()
        socket_side.closed = False  # even were the transport still open, the head stays unsent
        await asyncio.sleep(0)
        assert socket_side.sent == []

    asyncio.run(scenario())


def connected() -> tuple[GuardedHttpToolsProtocol, SentBytes]:
    """A protocol of our uvicorn config, connected to a SentBytes (in a running loop)."""
    config = uvicorn_config(Starlette(), log_config=None)
    config.load()
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    socket_side = SentBytes()
    protocol.connection_made(socket_side)  # type: ignore[arg-type]
    return protocol, socket_side


def test_every_connection_sends_through_one_send_per_turn() -> None:
    async def scenario() -> None:
        protocol, socket_side = connected()
        assert isinstance(protocol.transport, OneSendPerTurn)
        protocol.transport.write(HEAD)
        protocol.transport.write(b"{}")
        assert socket_side.sent == [HEAD + b"{}"]
        protocol.transport.close()

    asyncio.run(scenario())


def test_connections_refused_for_being_busy_are_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ledger.logs import Throttled
    from ledger.overrides.refusals import REFUSED_LINE, log

    now = [1000.0]
    timers: list[tuple[float, Any]] = []
    refusals = Throttled(
        REFUSED_LINE, lambda: now[0], lambda delay, f: timers.append((delay, f)), logger=log
    )
    with caplog.at_level("WARNING", logger="ledger.http.server"):
        for _ in range(500):
            refusals.happened(4097)
        now[0] += 61
        refusals.happened(4097)  # a minute on: written at once
        for _ in range(3):
            refusals.happened(4000)
        now[0] += 60  # and no more come: the minute's end writes them
        for _, flush in timers:
            flush()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "4097 connections, all busy: closed 1 new one(s) since the last such line",
        "4097 connections, all busy: closed 500 new one(s) since the last such line",
        "4000 connections, all busy: closed 3 new one(s) since the last such line",
    ]
    assert [delay for delay, _ in timers] == [60.0]  # one timer at a time


def test_a_stream_whose_client_ended_its_side_before_it_began_ends_at_once() -> None:
    # The end of input came while the stream's first store read ran: the connection waited
    # to "answer, then close" an answer that never ends, holding a stream's place.
    async def scenario() -> None:
        protocol, socket_side = connected()
        protocol.data_received(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        assert protocol.eof_received() is True  # its answer is still to come: kept open
        assert not socket_side.closed
        protocol.scope["extensions"][ENDLESS]()  # the answer turns out to be a stream
        assert socket_side.closed
        await asyncio.gather(*protocol.tasks)

    asyncio.run(scenario())
