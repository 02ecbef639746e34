"""The frames HTTP workers and a writer process exchange over a Unix socket.

A frame is a 4-byte big-endian length and a payload. Workers send a batch of orders, and of
changes of the books, in the order they came (orjson);
the writer answers each batch with one frame of records: request id, flags, and the answer's
JSON body, ready to be sent to the client as it is (no decoding and encoding again).
"""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import orjson

from ledger.amounts import canonical
from ledger.answers import OrderOutcome, OrderRequest
from ledger.domain import Position
from ledger.user_answers import ChangeOutcome, ChangeRequest, Scope

Request = OrderRequest | ChangeRequest

LENGTH = struct.Struct("!I")
RECORD = struct.Struct("!IBI")  # request id, flags, body length
MAX_FRAME = 1 << 30  # a 10,000-user fan-out answer is ~1 MB; a batch of them stays far below

ORDERS = b"O"  # worker -> writer: a batch of orders
ANSWERS = b"A"  # writer -> worker: one record per order of a batch

REUSED = 1  # the ORDER_ID belongs to another order (409)
FAILED = 2  # not committed: the body is the reason (503)


class WriterUnavailable(Exception):
    """The order was not committed: the database failed, or the writer is stopping or gone."""


class WireError(Exception):
    """The peer sent something that is not a frame of this protocol."""


@dataclass(frozen=True, slots=True)
class Answered:
    """A committed order's answer as JSON bytes, or why it was not committed."""

    body: bytes
    reused_id: bool = False
    failed: bool = False

    @classmethod
    def of(cls, outcome: OrderOutcome | ChangeOutcome) -> Answered:
        """The wire form of an in-process outcome."""
        return cls(orjson.dumps(outcome.answer), reused_id=outcome.reused_id)


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """One frame's payload; IncompleteReadError at the end of the stream."""
    (size,) = LENGTH.unpack(await reader.readexactly(LENGTH.size))
    if size > MAX_FRAME:
        msg = f"frame of {size} bytes"
        raise WireError(msg)
    return await reader.readexactly(size)


def frame(kind: bytes, payload: bytes) -> bytes:
    """A frame of one kind."""
    return LENGTH.pack(len(kind) + len(payload)) + kind + payload


def encode_orders(batch: list[tuple[int, Request]]) -> bytes:
    """A batch of orders (lists) and changes (objects), each with the worker's request id."""
    return frame(
        ORDERS,
        orjson.dumps(
            [
                [
                    *(n, r.strategy, r.instrument, r.position.value, r.order_id, r.received_at),
                    *(
                        r.quantity,
                        None if r.price is None else canonical(r.price),
                        r.quantity_given,
                    ),
                ]
                if isinstance(r, OrderRequest)
                else {"n": n, **{name: getattr(r, name) for name in r.__slots__}}
                for n, r in batch
            ]
        ),
    )


def _decoded(item: Any) -> tuple[int, Request]:
    if isinstance(item, dict):
        n = item.pop("n")
        return n, ChangeRequest(**{**item, "scope": Scope(item["scope"])})
    n, s, i, p, o, at, quantity, price, given = item
    # The price as its string: a Decimal, exactly as parsed, on both sides.
    return n, OrderRequest(
        s,
        i,
        Position(p),
        o,
        datetime.fromisoformat(at),
        quantity,
        None if price is None else Decimal(price),
        given,
    )


def decode_orders(payload: bytes) -> list[tuple[int, Request]]:
    """The orders and changes of a batch frame."""
    try:
        return [_decoded(item) for item in orjson.loads(payload)]
    except (ValueError, TypeError, KeyError) as bad:
        msg = f"not a batch of orders: {bad}"
        raise WireError(msg) from None


def encode_answers(answers: list[tuple[int, Answered]]) -> bytes:
    """One record per order of a batch."""
    parts = [ANSWERS]
    for n, answered in answers:
        flags = (REUSED if answered.reused_id else 0) | (FAILED if answered.failed else 0)
        parts.append(RECORD.pack(n, flags, len(answered.body)))
        parts.append(answered.body)
    payload = b"".join(parts)
    return LENGTH.pack(len(payload)) + payload


def decode_answers(payload: bytes) -> list[tuple[int, Answered]]:
    """The records of an answers frame."""
    if payload[:1] != ANSWERS:
        msg = f"expected answers, got {payload[:1]!r}"
        raise WireError(msg)
    answers = []
    at = 1
    view = memoryview(payload)
    while at < len(payload):
        n, flags, size = RECORD.unpack_from(view, at)
        at += RECORD.size
        body = bytes(view[at : at + size])
        at += size
        answers.append((n, Answered(body, bool(flags & REUSED), bool(flags & FAILED))))
    return answers


class Desk(Protocol):
    """Where the HTTP layer places orders: the writer in this process, or a writer process."""

    @property
    def queued(self) -> int:
        """Orders waiting for their commit."""
        ...

    @property
    def failing(self) -> str | None:
        """Why the last commit failed, until one succeeds again; None when commits succeed."""
        ...

    @property
    def partitions(self) -> int:
        """How many writers the strategies are split over (see partition())."""
        ...

    async def place(self, request: Request) -> Answered:
        """The answer once committed; WriterUnavailable when it was not.

        An order goes to the writer of its strategy, a change to that of its partition.
        """
        ...


def partition(strategy: str, partitions: int) -> int:
    """Which writer owns a strategy: the same in every process and after every restart."""
    return zlib.crc32(strategy.encode("utf-8", "surrogatepass")) % partitions


FAILING_FOR = 10.0  # seconds a commit failure counts against /health when no commit follows


def recent_failure(failure: tuple[str, float] | None) -> str | None:
    """The reason of a commit failure while it is recent; a quiet writer heals in time."""
    if failure is None or time.monotonic() - failure[1] > FAILING_FOR:
        return None
    return failure[0]
