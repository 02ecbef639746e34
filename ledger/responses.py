"""JSON answers, rendered with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONResponse(Response):
    """JSON via orjson; names and instruments are returned byte for byte."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    """A JSON error answer."""
    return JSONResponse({"error": message, **extra}, status_code=status)
