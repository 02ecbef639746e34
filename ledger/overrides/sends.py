"""Sending answers: small writes at once (TCP_NODELAY), and a response's head with its body."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterable
from typing import Any


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Send small writes at once (TCP_NODELAY) on a TCP connection.

    A response is two writes (head, then body). On the socket the workers inherit from the
    supervisor (opened by uvicorn as AF_UNIX), the event loop leaves Nagle's algorithm on:
    the body waited for the ACK of the head, which a keep-alive client delays by 40 ms, so
    every request on a reused connection took >= 40 ms (measured: 48 ms a POST /order, then
    2-5 ms with this).
    """
    sock = transport.get_extra_info("socket")
    # Not by its family: uvicorn opens an inherited fd as AF_UNIX whatever it is, so the
    # socket says AF_UNIX even for TCP; a real Unix socket refuses the option, harmlessly.
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


HOLD_AT_MOST = 4096  # bytes of a response head held back for its body


class OneSendPerTurn:
    """A transport that sends a response's head with its body, in one write.

    uvicorn writes a response's head and its body apart, and the event loop sends each at
    once: two system calls and, with TCP_NODELAY, two packets per answer. A head is held
    until the next write, which takes it along, or until the end of this turn of the event
    loop. Only heads are held: a body or a stream's last chunk leaves when written, as
    before; a long body goes straight through, so the transport's flow control (a long
    answer waits while the client reads nothing) sees every byte as before.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held = b""
        self._due = False  # a flush is scheduled

    def write(self, data: bytes) -> None:
        """Send data with what is held (a head), or hold it if it is a head."""
        held, self._held = self._held, b""
        if held and len(data) <= HOLD_AT_MOST:
            self._transport.write(held + data)
            return
        if held:
            self._transport.write(held)  # a long body goes as it is, never copied
        if len(data) <= HOLD_AT_MOST and data.startswith(b"HTTP/"):
            self._held = bytes(data)
            if not self._due:
                self._due = True
                self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send what is held."""
        self._due = False
        held, self._held = self._held, b""
        if held and not self._transport.is_closing():
            self._transport.write(held)

    def writelines(self, lines: Iterable[bytes]) -> None:
        """Send what is held, then the lines."""
        self.flush()
        self._transport.writelines(lines)

    def write_eof(self) -> None:
        """Send what is held, then end the stream."""
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        """Send what is held, then close (a response with `connection: close`)."""
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        """Close at once: what is held is dropped, as the transport drops its buffer."""
        self._held = b""
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
