"""JSON answers, rendered with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Send


class JSONResponse(Response):
    """JSON via orjson; names and instruments are returned byte for byte."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    """A JSON error answer."""
    return JSONResponse({"error": message, **extra}, status_code=status)


async def send_error(send: Send, status: int, message: str, *headers: tuple[bytes, bytes]) -> None:
    """A JSON error straight from ASGI middleware, before any route runs."""
    body = orjson.dumps({"error": message})
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
