"""POST /order (and /create_order): decide an order for every user who trades its strategy."""

from __future__ import annotations

import asyncio

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from ledger.answers import OrderAnswer
from ledger.http import lanes
from ledger.http.responses import error
from ledger.http.schemas import MAX_BODY, BadRequest, OrderBody, parse_order
from ledger.http.spec import Doc, documented
from ledger.http.state import services
from ledger.wire import WriterUnavailable

RETRY = "send again with the same ORDER_ID"
RETRY_AFTER = {"Retry-After": str(lanes.RETRY_AFTER)}  # a writer restarting, books loading


class BodyTooLarge(Exception):
    """The request body is over the limit."""


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, refusing early when it is over the limit (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


@documented(
    Doc(
        "Decide an order for every user who trades its strategy",
        OrderAnswer,
        body=OrderBody,
        description="Keys may also be lower case. The same ORDER_ID returns the first answer.",
        errors={
            400: "the client went away before sending the body",
            408: "the body did not arrive in time",
            409: "ORDER_ID already used for a different order (`order` is the first answer)",
            413: f"body over {MAX_BODY // 1024} KiB",
            422: "malformed order; `fields` names the bad fields",
            503: "not committed (database unavailable, or no answer in time); send again with"
            " the same ORDER_ID",
        },
    )
)
async def create_order(request: Request) -> Response:
    """Decide an order for every user who trades its strategy; answer once committed."""
    running = services(request)
    settings = running.settings
    try:
        # asyncio.timeout, not wait_for: no extra task per request on the hot path.
        async with asyncio.timeout(settings.body_timeout):
            raw = await read_body(request)
    except TimeoutError:
        return error(408, f"body not received within {settings.body_timeout} s")
    except BodyTooLarge:
        return error(413, f"body larger than {MAX_BODY} bytes")
    except ClientDisconnect:
        return error(400, "client disconnected before sending the body")
    try:
        order = parse_order(raw)
    except BadRequest as bad:
        return error(422, bad.message, fields=bad.errors)
    try:
        async with asyncio.timeout(settings.answer_timeout):
            answered = await running.desk.place(order)
    except TimeoutError:
        message = f"not answered within {settings.answer_timeout} s; the order may still commit"
        return error(503, message, retry=RETRY, headers=RETRY_AFTER)
    except WriterUnavailable as unavailable:
        return error(503, str(unavailable), retry=RETRY, headers=RETRY_AFTER)
    if answered.failed:
        return error(503, answered.body.decode(), retry=RETRY, headers=RETRY_AFTER)
    if answered.reused_id:
        return error(
            409,
            "ORDER_ID already used for a different order",
            fields={"ORDER_ID": "already used"},
            order=orjson.Fragment(answered.body),
        )
    # The answer's JSON as the writer rendered it, byte for byte.
    return Response(answered.body, media_type="application/json")


def routes() -> list[Route]:
    """The write endpoints: /order, and /create_order for the original producer."""
    return [
        Route("/order", create_order, methods=["POST"], name="order"),
        Route("/create_order", create_order, methods=["POST"], name="create_order"),
    ]
