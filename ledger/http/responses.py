"""JSON answers, rendered with orjson: the answer dataclasses as they are, errors as ErrorBody."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Send

from ledger.answers import ErrorBody, OrderAnswer


class JSONResponse(Response):
    """JSON via orjson; names and instruments are returned byte for byte."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_body(
    message: str,
    *,
    fields: Mapping[str, str] | None = None,
    retry: str | None = None,
    order: OrderAnswer | orjson.Fragment | None = None,
    order_id: str | None = None,
) -> ErrorBody:
    """The JSON error body; optional parts only when given."""
    body: ErrorBody = {"error": message}
    if fields is not None:
        body["fields"] = dict(fields)
    if retry is not None:
        body["retry"] = retry
    if order is not None:
        # A Fragment is an OrderAnswer's JSON as the writer rendered it.
        body["order"] = order  # type: ignore[typeddict-item]
    if order_id is not None:
        body["order_id"] = order_id
    return body


def error(
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    fields: Mapping[str, str] | None = None,
    retry: str | None = None,
    order: OrderAnswer | orjson.Fragment | None = None,
    order_id: str | None = None,
) -> JSONResponse:
    """A JSON error answer."""
    body = error_body(message, fields=fields, retry=retry, order=order, order_id=order_id)
    return JSONResponse(body, status_code=status, headers=headers)


async def send_error(
    send: Send, status: int, message: str, *headers: tuple[bytes, bytes], retry: str | None = None
) -> None:
    """A JSON error straight from ASGI middleware (or the server), before any route runs."""
    body = orjson.dumps(error_body(message, retry=retry))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
