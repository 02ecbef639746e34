"""The uvicorn configuration every HTTP process runs: idle and slow clients time out.

The protocol that does it leans on uvicorn internals, so it lives with the other library
overrides in ledger.overrides.uvicorn_http.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import Config

from ledger.overrides.uvicorn_http import (
    HEADER_TIMEOUT,
    KEEP_ALIVE_TIMEOUT,
    MAX_CONNECTIONS,
    guarded_protocol,
)


def uvicorn_config(
    app: ASGIApp | str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    fd: int | None = None,
    header_timeout: float = HEADER_TIMEOUT,
    timeout_keep_alive: int = KEEP_ALIVE_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
    max_requests: int | None = None,
    **kw: Any,
) -> Config:
    """A uvicorn Config whose connections time out and whose limits count requests in flight."""
    clash = {"http", "limit_concurrency", "ws"} & kw.keys()
    if clash:
        raise TypeError(f"uvicorn_config sets {', '.join(sorted(clash))} itself")
    return Config(
        app,
        host=host,
        port=port,
        fd=fd,
        http=guarded_protocol(header_timeout, max_connections, max_requests),
        limit_concurrency=None,
        timeout_keep_alive=timeout_keep_alive,
        # No WebSocket is served: an Upgrade is answered as HTTP/1.1 (GuardedHttpToolsProtocol),
        # not by the websockets package (a text 403 and two log lines a request).
        ws="none",
        **kw,
    )


def serve(
    app: ASGIApp | str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    fd: int | None = None,
    sockets: list[socket.socket] | None = None,
    header_timeout: float = HEADER_TIMEOUT,
    timeout_keep_alive: int = KEEP_ALIVE_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
    max_requests: int | None = None,
    **kw: Any,
) -> bool:
    """Run one server process (on `sockets` if given) until it stops; False if it never started."""
    config = uvicorn_config(
        app,
        host=host,
        port=port,
        fd=fd,
        header_timeout=header_timeout,
        timeout_keep_alive=timeout_keep_alive,
        max_connections=max_connections,
        max_requests=max_requests,
        **kw,
    )
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: Ctrl+C is a normal stop
        server.run(sockets=sockets)
    return server.started
