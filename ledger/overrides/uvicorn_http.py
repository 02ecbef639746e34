"""uvicorn's httptools protocol, extended: idle and slow clients time out (uvicorn internals).

Stock uvicorn (0.55) has no timeout before the first request or while a request head
arrives, and its `limit_concurrency` counts open connections, so silent connections make
every other client get 503. `GuardedHttpToolsProtocol` adds a head timeout, bounds open
connections by closing the longest-idle one, and bounds requests in flight instead. It also
bounds a head's bytes and refuses what it cannot read after the answers before it
(refusals.py), where uvicorn wrote a plain-text 400 over them.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.utils import get_client_addr
from uvicorn.server import ServerState

from ledger.logs import logfmt
from ledger.overrides import refusals
from ledger.overrides.sends import OneSendPerTurn, no_delay

log = logging.getLogger("ledger.http.server")

HEADER_TIMEOUT = 10.0
KEEP_ALIVE_TIMEOUT = 5
ABORT = "ledger.abort"  # the scope extension an app calls to close its connection at once
# ... and the one it calls when its answer never ends (the event stream): a client that shuts
# down its side of such a connection is gone, not waiting for the end of the answer.
ENDLESS = "ledger.endless"
MAX_CONNECTIONS = 4096
# Bytes read while a request head (or a chunked body's trailer section) is incomplete, past
# which it is refused (431). httptools and uvicorn gather one by joining bytes (quadratic): an
# endless header took a worker to 191 MB and its loop for seconds, eight of them 514 MB, an
# endless trailer 1.5 GB. Reads are counted from the one after the head began (that one may
# hold answered requests before it): a head is cut within HEAD_LIMIT and one read (64-256
# KiB). The app refuses heads over 16 KiB (ledger.http.limits) once they are whole.
HEAD_LIMIT = 64 * 1024
LINGER = 2.0  # seconds a refused request's client may go on sending before the connection closes
# Requests read on one connection and not yet answered, past which the next is refused (429).
# uvicorn parses a whole read (up to 256 KiB): 100,000 pipelined GETs in one send took a
# worker from 196 to 443 MB (~2.5 KB each), and answering them slowed with their number.
MAX_PIPELINED = 64
STALL = 30.0  # seconds a client may read nothing of its answers before it is cut off

# What this module leans on that uvicorn does not promise to keep. Methods overridden or
# called (owner, attribute): the constructor's signature (config, server_state, app_state,
# _loop), the httptools parser callback on_headers_complete, which runs self.app, and
# on_response_complete, which arms timeout_keep_alive_task exactly when the connection idles.
RELIED_ON: list[tuple[Any, str]] = [
    (HttpToolsProtocol, "__init__"),
    (HttpToolsProtocol, "connection_made"),
    (HttpToolsProtocol, "connection_lost"),
    (HttpToolsProtocol, "data_received"),
    (HttpToolsProtocol, "eof_received"),
    (HttpToolsProtocol, "on_headers_complete"),
    (HttpToolsProtocol, "on_response_complete"),
    # Called by data_received on a request httptools cannot parse, after logging
    # PARSER_WARNING on self.logger (uvicorn.error), which QUIET_PARSER drops.
    (HttpToolsProtocol, "send_400_response"),
    # Called by data_received on a request with an Upgrade the server does not speak.
    (HttpToolsProtocol, "_unsupported_upgrade_warning"),
    (HttpToolsProtocol, "_unset_keepalive_if_required"),
    # Parser callbacks extended (httptools calls on_chunk_header, which uvicorn lacks).
    (HttpToolsProtocol, "on_message_begin"),
    (HttpToolsProtocol, "on_body"),
    (HttpToolsProtocol, "on_message_complete"),
]
# Instance attributes, seen only on live objects: (class path, attribute).
RELIED_ON_INSTANCES = [
    ("uvicorn.protocols.http.httptools_impl.HttpToolsProtocol", "app"),
    ("uvicorn.protocols.http.httptools_impl.HttpToolsProtocol", "limit_concurrency"),
    ("uvicorn.protocols.http.httptools_impl.HttpToolsProtocol", "connections"),
    ("uvicorn.protocols.http.httptools_impl.HttpToolsProtocol", "tasks"),
    ("uvicorn.protocols.http.httptools_impl.HttpToolsProtocol", "transport"),
    ("uvicorn.protocols.http.httptools_impl.HttpToolsProtocol", "scope"),
    ("uvicorn.protocols.http.httptools_impl.HttpToolsProtocol", "loop"),
    ("uvicorn.protocols.http.httptools_impl.HttpToolsProtocol", "timeout_keep_alive_task"),
    ("uvicorn.protocols.http.httptools_impl.HttpToolsProtocol", "pipeline"),
    ("uvicorn.protocols.http.httptools_impl.HttpToolsProtocol", "cycle"),
    ("uvicorn.server.ServerState", "connections"),
    ("uvicorn.protocols.http.httptools_impl.HttpToolsProtocol", "client"),
    ("uvicorn.protocols.http.httptools_impl.HttpToolsProtocol", "flow"),
    ("uvicorn.server.ServerState", "tasks"),
    ("uvicorn.server.ServerState", "default_headers"),
]
# And of RequestResponseCycle (tests/e2e/test_slow_clients.py uses each): more_body,
# response_started, response_complete, disconnected, message_event, keep_alive, scope.

# Per server, the connections waiting for a request head with no request in flight, oldest
# first: the ones to close when the server is full. Keyed by uvicorn's ServerState so
# servers sharing a protocol class (tests, several servers in a process) stay apart.
_IDLE: weakref.WeakKeyDictionary[ServerState, dict[GuardedHttpToolsProtocol, None]] = (
    weakref.WeakKeyDictionary()
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request-head timeout and idle-first eviction."""

    header_timeout: ClassVar[float] = HEADER_TIMEOUT
    max_connections: ClassVar[int] = MAX_CONNECTIONS
    max_requests: ClassVar[int] = MAX_CONNECTIONS

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # uvicorn's own check counts open connections, idle ones included: off, and
        # on_headers_complete bounds requests in flight instead.
        self.limit_concurrency = None
        self._app = self.app
        self._head_timer: asyncio.TimerHandle | None = None
        self._unanswered: list[RequestResponseCycle] = []  # running or pipelined, in order
        self._idle = _IDLE.setdefault(server_state, {})
        self._sending_done = False  # the client shut down its side: answer, then close
        self._endless = False  # the answer in flight never ends (ENDLESS)
        # A request that cannot be read: refused (refusals.NOT_HTTP...) once the requests
        # before it are answered; nothing after it is read.
        self._refused: tuple[bytes, bytes] | None = None
        self._stalled: asyncio.TimerHandle | None = None  # while writing waits for the client
        self._in_head = False  # a request head (or a trailer section) is being read
        self._head_bytes = -1  # bytes read since the read it began in (-1: in that read)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept, closing the longest-idle connection when full; start the head timer."""
        super().connection_made(transport)
        no_delay(transport)
        self.transport = OneSendPerTurn(transport, self.loop)  # type: ignore[assignment]
        while len(self.connections) > self.max_connections and self._idle:
            next(iter(self._idle)).drop()
        if len(self.connections) > self.max_connections:
            # Every connection has a request in flight: the newcomer is the one to go.
            refusals.REFUSED.happened(len(self.connections))
            self.drop()
            return
        self._idle[self] = None
        self._start_head_timer()  # the first request's head is due header_timeout after connect

    def data_received(self, data: bytes) -> None:
        """Start the head timer on the first byte of a request after a keep-alive wait; refuse
        a head over HEAD_LIMIT; read nothing after a refused request."""
        if self._refused is not None:
            return
        # uvicorn cancels its keep-alive timer on any byte and arms nothing else, so a head
        # (or blank lines before one) trickling in would otherwise hold the connection forever.
        if self._head_timer is None and self in self._idle:
            self._start_head_timer()
        super().data_received(data)
        if self._in_head and self._refused is None:
            self._head_bytes = 0 if self._head_bytes < 0 else self._head_bytes + len(data)
            if self._head_bytes > HEAD_LIMIT:
                self._refuse(refusals.HEAD_TOO_LARGE, f"a head over {HEAD_LIMIT} bytes")

    def on_message_begin(self) -> None:
        """A request head begins (its first byte was read)."""
        super().on_message_begin()
        self._in_head, self._head_bytes = True, -1

    def on_chunk_header(self) -> None:
        """A chunk of a chunked body begins: after the last, the trailer section."""
        self._in_head, self._head_bytes = True, -1

    def on_body(self, body: bytes) -> None:
        """Part of the body: not a trailer section."""
        self._in_head = False
        if self._refused is None:  # else the rest of a read: no request of its own to go to
            super().on_body(body)

    def on_message_complete(self) -> None:
        """The request is read whole."""
        self._in_head = False
        if self._refused is None:
            super().on_message_complete()

    def pause_writing(self) -> None:
        """The client reads too slowly for what is written: it has STALL seconds to read."""
        super().pause_writing()
        if self._stalled is None:
            self._stalled = self.loop.call_later(STALL, self._stall)

    def resume_writing(self) -> None:
        """The client read: no deadline."""
        super().resume_writing()
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def _stall(self) -> None:
        # Small answers had no deadline: 300 pipelined ones, never read, held a connection, a
        # request in flight and ~4 MB for good (an answer over 64 KiB has its own: limits.py).
        self._stalled = None
        refusals.STALLED.happened(f"{self._peer()}")
        self.drop_now()

    def eof_received(self) -> bool:  # type: ignore[override] # asyncio's: bool | None
        """The client will send nothing more: answer the requests it sent, then close."""
        # Returning false closes the transport, and connection_lost drops the answers still
        # being worked on: a client that shuts down its sending side after a request (nc -N,
        # some scripts) had its order booked and never heard so. A request whose body is
        # cut short can never complete: that is a client gone.
        waiting = any(not c.response_complete for c in self._unanswered)
        cut_short = self.cycle is not None and self.cycle.more_body
        if not waiting or self._endless or (cut_short and not self.cycle.response_complete):
            # A stream's client that closed normally held its place (LEDGER_MAX_STREAMS) until
            # a heartbeat or two failed to write: up to ~30 s.
            return False
        self._sending_done = True
        self._stop_head_timer()  # a next request's head cannot come any more
        return True

    def on_headers_complete(self) -> None:
        """Stop the head timer; answer 503 instead when too many requests are in flight."""
        self._stop_head_timer()
        self._idle.pop(self, None)
        self._in_head = False
        if self._refused is not None:
            return  # the rest of a read after a refusal: not run
        if len(self._unanswered) >= MAX_PIPELINED:
            self._refuse(refusals.TOO_MANY_PIPELINED, f"over {MAX_PIPELINED} requests pipelined")
            return
        full = len(self.tasks) >= self.max_requests
        if full:
            refusals.BUSY.happened(len(self.tasks))
        # uvicorn's on_headers_complete runs self.app for this request (or queues it).
        self.app = refusals.busy if full else self._app
        # A long response (the event stream) whose client stopped reading may block in send()
        # forever: the app can close the connection at once, unflushed (ledger.http.stream).
        extensions: dict[str, Any] = {
            **self.scope.get("extensions", {}),
            ABORT: self.drop_now,
            ENDLESS: self.endless,
        }
        self.scope["extensions"] = extensions
        super().on_headers_complete()
        self._unanswered.append(self.cycle)

    def on_response_complete(self) -> None:
        """Once uvicorn waits for the next request on this connection, it may be closed."""
        self._unanswered = [c for c in self._unanswered if not c.response_complete]
        super().on_response_complete()
        if self._refused is not None:
            self._refuse_when_due()
            return
        if self._sending_done and not self._unanswered:
            self.drop()  # every request the client sent before its EOF is answered
            return
        # uvicorn arms its keep-alive timer exactly when the connection turns idle (not
        # closing, no pipelined request queued); the head timer waits for the next byte.
        if self.timeout_keep_alive_task is not None:
            self._idle[self] = None

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection; its requests still running answer nobody, quietly."""
        # uvicorn marks only the last request read as disconnected. With pipelined requests
        # the one being answered is an earlier one: its answer would be written to a closed
        # transport, which uvloop refuses with a RuntimeError, logged as a traceback.
        running = [c for c in self._unanswered if not c.response_complete]
        queued = {id(cycle) for cycle, _ in self.pipeline}
        for cycle in running:
            cycle.disconnected = True
            cycle.message_event.set()  # a request waiting in receive() sees http.disconnect
        started = [c for c in running if id(c) not in queued]
        if started:
            scope = started[0].scope
            more = len(running) - 1
            refusals.GONE.happened(
                # The path is client input: quoted and escaped.
                f"{get_client_addr(scope)}, {scope['method']} {logfmt(scope['path'])}"
                + (f" ({more} more request(s) not answered)" if more else "")
            )
        self._unanswered = []
        super().connection_lost(exc)
        self._stop_head_timer()
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        self._idle.pop(self, None)

    def send_400_response(self, msg: str) -> None:
        """A request httptools cannot parse: refused once the requests before it are answered
        (uvicorn writes its plain-text 400 at once, in place of an answer not yet written:
        an order booked was answered 400 to a client that sent one stray byte after it)."""
        self._refuse(refusals.NOT_HTTP, "not HTTP")

    def _unsupported_upgrade_warning(self) -> None:
        """A request asks for a protocol the server does not speak (WebSocket, h2c): answered
        as HTTP/1.1, then closed, as httptools reads nothing after its head (not its body)."""
        cycle = self.cycle
        if self._refused is not None:
            return  # refused already: answered as that
        if cycle is None or cycle.response_complete:
            self.drop()  # nothing left to answer on this connection
            return
        if not cycle.keep_alive:
            return  # seen already: each later read raises again
        cycle.keep_alive = False
        path = logfmt(self.scope["path"])  # client input: quoted and escaped
        refusals.UPGRADES.happened(f"{self._peer()}, {self.scope['method']} {path}")
        if any(_announces_body(name, value) for name, value in self.scope["headers"]):
            # Its app would read an empty body: `curl --http2 -d` had an order answered 422.
            self._refuse(refusals.UPGRADE_WITH_BODY, "an upgrade with a body", cycle)

    def _refuse(
        self, answer: tuple[bytes, bytes], why: str, broken: RequestResponseCycle | None = None
    ) -> None:
        """Refuse a request (`broken`, or the one being read) after the ones before it; read
        nothing more."""
        if self._refused is not None:
            return  # the rest of a read after a refusal: refused already
        refusals.MALFORMED.happened(f"{self._peer()}, {why}")
        self._refused = answer
        self._stop_head_timer()
        self._idle.pop(self, None)
        cycle = self.cycle
        if broken is None and cycle is not None and not cycle.response_complete:
            broken = cycle if cycle.more_body else None  # its body cannot be read
        if broken is not None:
            # Its app sees the client gone; queued, it never starts.
            broken.disconnected = True
            broken.message_event.set()
            self._unanswered = [c for c in self._unanswered if c is not broken]
            for queued in [p for p in self.pipeline if p[0] is broken]:
                self.pipeline.remove(queued)
            if broken.response_started:  # answered in part: no other answer can follow
                self.drop_now()
                return
        if self._endless:  # a stream's client sending bytes that are not HTTP: gone
            self.drop_now()
            return
        self._refuse_when_due()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "?"

    def _refuse_when_due(self) -> None:
        if self._refused is None or any(not c.response_complete for c in self._unanswered):
            return  # on_response_complete comes back once the next answer is written
        self.connections.discard(self)
        if self.transport.is_closing():  # the answer before it closed the connection
            return
        self._unset_keepalive_if_required()
        self.transport.write(refusals.refusal(self._refused, self.server_state.default_headers))
        if self._sending_done or not self.transport.can_write_eof():
            self.transport.close()  # the client sends nothing more (or TLS: no half-close)
            return
        # Closed with bytes of the client's unread, the connection would be reset, and the
        # client, still sending, would lose the answer: the server's side ends, the client's
        # bytes are read and dropped until it ends its side (eof_received), LINGER at most.
        self.transport.write_eof()
        self.flow.resume_reading()
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(LINGER, self.drop)

    def endless(self) -> None:
        """The answer in flight never ends: the client's end of input is its leaving."""
        self._endless = True
        if self._sending_done:  # it ended its side before the answer began: gone already
            self.drop_now()

    def drop_now(self) -> None:
        """Close this connection without flushing what is still to be written."""
        self.drop()
        self.transport.abort()

    def drop(self) -> None:
        """Close this connection now and stop counting it."""
        self._stop_head_timer()
        self._idle.pop(self, None)
        # Counted out at once, not when connection_lost runs on a later loop turn, so a
        # burst of new connections closes one idle connection each, not all of them.
        self.connections.discard(self)
        if not self.transport.is_closing():
            self.transport.close()

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        log.debug("request head not complete within %ss: closing", self.header_timeout)
        self.drop()


def _announces_body(name: bytes, value: bytes) -> bool:
    if name == b"transfer-encoding":
        return True
    return name == b"content-length" and value.strip().lstrip(b"0") != b""  # "00" is 0


def guarded_protocol(
    header_timeout: float = HEADER_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
    max_requests: int | None = None,
) -> type[GuardedHttpToolsProtocol]:
    """A GuardedHttpToolsProtocol class with these limits (uvicorn takes a class, not options)."""
    if (
        header_timeout <= 0
        or max_connections < 1
        or (max_requests is not None and max_requests < 1)
    ):
        raise ValueError("header_timeout, max_connections and max_requests must be positive")
    logging.getLogger("uvicorn.error").addFilter(refusals.QUIET_PARSER)  # a set: added once
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout": header_timeout,
            "max_connections": max_connections,
            "max_requests": max_connections if max_requests is None else max_requests,
        },
    )
