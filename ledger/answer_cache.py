"""The answers given lately, by ORDER_ID, so a retried order is answered without a read."""

from __future__ import annotations

from collections import OrderedDict

from ledger.answers import OrderAnswer

ANSWER_CACHE_SIZE = 100_000


class AnswerCache:
    """Least recently stored answers are dropped first; the store still has every answer."""

    def __init__(self, size: int = ANSWER_CACHE_SIZE) -> None:
        self.size = size
        self._answers: OrderedDict[str, OrderAnswer] = OrderedDict()

    def get(self, order_id: str) -> OrderAnswer | None:
        """The answer given for an ORDER_ID, if it is still held."""
        return self._answers.get(order_id)

    def put(self, order_id: str, answer: OrderAnswer) -> None:
        """Hold an answer, dropping the oldest beyond the bound."""
        self._answers[order_id] = answer
        if len(self._answers) > self.size:
            self._answers.popitem(last=False)
