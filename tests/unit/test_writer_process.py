"""The writer process's side of the wire: each request answered as it commits."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ledger.answers import OrderRequest
from ledger.domain import Position
from ledger.user_answers import ChangeAnswer, ChangeOutcome, ChangeRequest, Scope
from ledger.wire import LENGTH, WriterUnavailable, decode_answers
from ledger.writer_process import WriterServer


class Stream:
    """The frames written to a worker."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.frames.append(data[LENGTH.size :])

    async def drain(self) -> None:
        return None

    def answered(self) -> list[list[int]]:
        return [[n for n, _ in decode_answers(f)] for f in self.frames]


class Desk:
    """A writer whose requests commit when the test says."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[Any]] = []

    def enqueue(self, request: Any) -> asyncio.Future[Any]:
        if isinstance(request, ChangeRequest) and request.scope is Scope.USER:
            raise WriterUnavailable("busy")
        self.futures.append(asyncio.get_running_loop().create_future())
        return self.futures[-1]


def test_an_order_in_a_frame_with_a_document_does_not_wait_for_it() -> None:
    order = OrderRequest("STRATEGY_A", "ACC", Position.BUY, "o-1")
    document = ChangeRequest(Scope.ALL, {"u": {"STRATEGY_A": ["ACC"]}})
    refused = ChangeRequest(Scope.USER, {}, "u")
    stream, desk = Stream(), Desk()

    async def run() -> list[list[int]]:
        server = WriterServer(desk, Path("unused"))  # type: ignore[arg-type]
        answering = asyncio.ensure_future(
            server._answer([(1, document), (2, order), (3, refused)], stream)  # type: ignore[arg-type]
        )
        await asyncio.sleep(0)  # a turn: the three are queued, the refusal answered
        first = stream.answered()
        desk.futures[1].set_exception(WriterUnavailable("the order's batch failed"))
        for _ in range(100):  # turns of the loop, no time: the order's answer is written
            if len(stream.frames) == 2:
                break
            await asyncio.sleep(0)
        desk.futures[0].set_result(ChangeOutcome(ChangeAnswer(0, 9, False, [])))
        await answering
        return [*first, *stream.answered()[len(first) :]]

    assert asyncio.run(run()) == [[3], [2], [1]]
    failed = decode_answers(stream.frames[1])[0][1]
    assert failed.failed and failed.body == b"the order's batch failed"
