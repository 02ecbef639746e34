"""What the HTTP server answers when it refuses a request itself, before any route runs (JSON,
as every error of the service), and its log lines: one a minute per kind, with a count."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from ledger.http.lanes import RETRY_AFTER
from ledger.http.responses import error_body, send_error

log = logging.getLogger("ledger.http.server")


class Throttled:
    """A log line written at most once a minute, with how often it happened since the last
    such line (a line each let a flood of clients write thousands); the last minute's count
    is written when that minute ends. `message` takes {count} and {detail}."""

    EVERY = 60.0

    def __init__(
        self,
        message: str,
        clock: Callable[[], float] = time.monotonic,
        later: Callable[[float, Callable[[], None]], object] | None = None,
        level: int = logging.WARNING,
    ) -> None:
        self.message, self.level = message, level
        self.clock, self.later = clock, later  # later: the running loop's call_later
        self.since = 0
        self.detail: Any = None
        self.last = -self.EVERY
        self.pending = False

    def happened(self, detail: Any = None) -> None:
        """Count one more; `detail` is what the next line shows (the last given)."""
        self.since += 1
        self.detail = detail
        now = self.clock()
        if now - self.last >= self.EVERY:
            self._write(now)
        elif not self.pending:
            self.pending = True
            later = self.later or asyncio.get_running_loop().call_later
            later(self.last + self.EVERY - now, self._flush)

    def _flush(self) -> None:
        self.pending = False
        if self.since:
            self._write(self.clock())

    def _write(self, now: float) -> None:
        log.log(self.level, self.message.format(count=self.since, detail=self.detail))
        self.since, self.last = 0, now


REFUSED_LINE = "{detail} connections, all busy: closed {count} new one(s) since the last such line"
BUSY_LINE = "{detail} requests in flight: answered {count} request(s) 503 since the last such line"
MALFORMED_LINE = (
    "{count} request(s) not HTTP or with a head over the limit, answered 400 or 431, since the"
    " last such line; the last: {detail}"
)
UPGRADE_LINE = (
    "{count} request(s) asked for a protocol upgrade (answered as HTTP/1.1, then closed) since"
    " the last such line; the last: {detail}"
)
GONE_LINE = (
    "{count} client(s) went away before their answers since the last such line; the last: {detail}"
)
REFUSED, BUSY, MALFORMED, UPGRADES = (
    Throttled(line) for line in (REFUSED_LINE, BUSY_LINE, MALFORMED_LINE, UPGRADE_LINE)
)
GONE = Throttled(GONE_LINE, level=logging.INFO)

BUSY_HEADERS = ((b"retry-after", str(RETRY_AFTER).encode()), (b"connection", b"close"))
NOT_HTTP = (b"400 Bad Request", orjson.dumps(error_body("malformed HTTP request")))
HEAD_TOO_LARGE = (
    b"431 Request Header Fields Too Large",
    orjson.dumps(error_body("request head too large")),
)


async def busy(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer to a request over the bound of requests in flight."""
    retry = f"too many requests in flight: retry in {RETRY_AFTER} s"
    await send_error(send, 503, "busy", *BUSY_HEADERS, retry=retry)


def refusal(answer: tuple[bytes, bytes], default_headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A whole response, written by the protocol itself: (status, JSON body), then close."""
    status, body = answer
    head = [b"HTTP/1.1 ", status, b"\r\n"]
    for name, value in default_headers:
        head.extend([name, b": ", value, b"\r\n"])
    length = str(len(body)).encode()
    head.append(b"content-type: application/json\r\ncontent-length: " + length)
    return b"".join([*head, b"\r\nconnection: close\r\n\r\n", body])


class UvicornParserWarning(logging.Filter):
    """Drops uvicorn's line per malformed request: the protocol counts them (MALFORMED)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != PARSER_WARNING


PARSER_WARNING = "Invalid HTTP request received."  # uvicorn's, logged before send_400_response
QUIET_PARSER = UvicornParserWarning()
