"""The uvicorn parts ledger/http/server.py leans on are still there; its arguments are checked."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from starlette.applications import Starlette
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from ledger.http.server import uvicorn_config
from ledger.overrides.uvicorn_http import RELIED_ON, RELIED_ON_INSTANCES, GuardedHttpToolsProtocol


def test_relied_on_methods_exist() -> None:
    missing = [f"{owner.__name__}.{name}" for owner, name in RELIED_ON if not hasattr(owner, name)]
    assert missing == []
    parameters = list(inspect.signature(HttpToolsProtocol.__init__).parameters)
    assert parameters[:5] == ["self", "config", "server_state", "app_state", "_loop"]
    assert inspect.iscoroutinefunction(service_unavailable)


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


@pytest.mark.parametrize("key", ["http", "limit_concurrency"])
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
