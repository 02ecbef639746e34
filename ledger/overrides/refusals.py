"""What the HTTP server answers (JSON) and logs (once a minute) when it refuses a request itself."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import orjson
from starlette.types import Receive, Scope, Send

from ledger.http.lanes import RETRY_AFTER
from ledger.http.responses import error_body, send_error
from ledger.logs import Throttled

log = logging.getLogger("ledger.http.server")


REFUSED_LINE = "{detail} connections, all busy: closed {count} new one(s) since the last such line"
BUSY_LINE = "{detail} requests in flight: answered {count} request(s) 503 since the last such line"
MALFORMED_LINE = (
    "{count} request(s) not read (not HTTP, a head over the limit, an upgrade with a body, too"
    " many pipelined), answered 400, 429 or 431, since the last such line; the last: {detail}"
)
STALLED_LINE = (
    "{count} client(s) read nothing of their answers for 30 s, disconnected, since the last"
    " such line; the last: {detail}"
)
UPGRADE_LINE = (
    "{count} request(s) asked for a protocol upgrade (answered as HTTP/1.1, then closed) since"
    " the last such line; the last: {detail}"
)
GONE_LINE = (
    "{count} client(s) went away before their answers since the last such line; the last: {detail}"
)
REFUSED, BUSY, MALFORMED, UPGRADES, STALLED = (
    Throttled(line, logger=log)
    for line in (REFUSED_LINE, BUSY_LINE, MALFORMED_LINE, UPGRADE_LINE, STALLED_LINE)
)
GONE = Throttled(GONE_LINE, logger=log, level=logging.INFO)

BUSY_HEADERS = ((b"retry-after", str(RETRY_AFTER).encode()), (b"connection", b"close"))
NOT_HTTP = (b"400 Bad Request", orjson.dumps(error_body("malformed HTTP request")))
UPGRADE_WITH_BODY = (
    b"400 Bad Request",
    orjson.dumps(
        error_body("a request with a body cannot ask for a protocol upgrade: send it without")
    ),
)
TOO_MANY_PIPELINED = (
    b"429 Too Many Requests",
    orjson.dumps(error_body("too many requests sent ahead of their answers: send the rest again")),
)
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


PARSER_WARNING = "Invalid HTTP request received."  # uvicorn's, logged before send_400_response


class UvicornParserWarning(logging.Filter):
    """Drops uvicorn's line per malformed request: the protocol counts them (MALFORMED)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != PARSER_WARNING


QUIET_PARSER = UvicornParserWarning()
