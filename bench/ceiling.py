"""The ceiling: a minimal Starlette app that parses a JSON order and answers JSON."""

from __future__ import annotations

import sys

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def order(request: Request) -> Response:
    """Parse the order and echo an answer shaped like the ledger's."""
    body = orjson.loads(await request.body())
    answer = {
        "RESPONSE": "REJECTED",
        "order_id": body.get("ORDER_ID"),
        "sequence": 0,
        "strategy": body["STRATEGY"],
        "instrument": body["INSTRUMENT"],
        "position": body["POSITION"],
        "accepted_for": [],
        "rejected_for": [],
        "reason": None,
    }
    return Response(orjson.dumps(answer), media_type="application/json")


def create_app() -> Starlette:
    """The ceiling app."""
    return Starlette(routes=[Route("/order", order, methods=["POST"]), Route("/health", health)])


async def health(request: Request) -> Response:
    """Ready."""
    return Response(b"{}", media_type="application/json")


if __name__ == "__main__":
    uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
