"""The bearer-token middleware alone: one Authorization header, any case of scheme, exact token."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message, Receive, Scope, Send

from ledger.http.auth import BearerAuth

TOKEN = "s3cret-token"


async def inner(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind the middleware: 200 when reached."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def status(*authorizations: bytes, path: str = "/orders") -> int:
    """The status the middleware answers for a GET with these Authorization headers."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(b"host", b"testserver")] + [(b"authorization", a) for a in authorizations]
    scope: Scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
    asyncio.run(BearerAuth(inner, TOKEN)(scope, receive, send))
    code: int = sent[0]["status"]
    return code


@pytest.mark.parametrize("scheme", [b"Bearer ", b"bearer ", b"BEARER ", b"bEaReR ", b"Bearer   "])
def test_the_scheme_is_case_insensitive(scheme: bytes) -> None:
    assert status(scheme + TOKEN.encode()) == 200  # 1*SP after it, as RFC 6750 has it


@pytest.mark.parametrize(
    "given",
    [
        b"",
        b"Bearer",
        b"Bearer ",
        TOKEN.encode(),
        b"Bearer " + TOKEN.upper().encode(),
        b"Bearer " + TOKEN.encode() + b"x",
        b"Bearer " + TOKEN.encode() + b" ",
        b"Bearerx" + TOKEN.encode(),
        b"Basic " + TOKEN.encode(),
        b"Bear\xc3\xa9r " + TOKEN.encode(),
    ],
)
def test_the_token_itself_is_exact(given: bytes) -> None:
    assert status(given) == 401


def test_no_header_is_401_and_health_stays_open() -> None:
    assert status() == 401
    assert status(path="/health") == 200


def test_two_authorization_headers_are_401_whatever_their_order() -> None:
    right = b"Bearer " + TOKEN.encode()
    wrong = b"Bearer nope"
    assert status(wrong, right) == 401
    assert status(right, wrong) == 401
    assert status(right, right) == 401
    assert status(right) == 200
