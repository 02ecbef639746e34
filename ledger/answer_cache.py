"""The answers given lately, by ORDER_ID, so a retried order is answered without a read."""

from __future__ import annotations

from collections import OrderedDict

from ledger.answers import OrderAnswer

ANSWER_CACHE_SIZE = 100_000
# An answer's size grows with its strategy's users: one decision each (plus one for the
# order). Measured with tracemalloc (tests/unit/test_answer_cache.py does it again): a
# rejection whose user name is a string of its own costs ~270 bytes, an acceptance ~85, and
# names shared with the books less. 100,000 decisions at 270 bytes is ~27 MB: 10 answers of
# a 10,000-user strategy, or ~4,500 of a 20-user one (seconds of full load), which covers a
# client's prompt retry; an older ORDER_ID is answered from the store (one read).
DECISION_BUDGET = 100_000


def _decisions(answer: OrderAnswer) -> int:
    return len(answer.accepted_for) + len(answer.rejected_for) + 1


class AnswerCache:
    """Least recently stored answers are dropped first; the store still has every answer."""

    def __init__(self, size: int = ANSWER_CACHE_SIZE, decisions: int = DECISION_BUDGET) -> None:
        self.size = size
        self.budget = decisions
        self.decisions = 0  # held now, against the budget
        self._answers: OrderedDict[str, OrderAnswer] = OrderedDict()

    def get(self, order_id: str) -> OrderAnswer | None:
        """The answer given for an ORDER_ID, if it is still held."""
        return self._answers.get(order_id)

    def put(self, order_id: str, answer: OrderAnswer) -> None:
        """Hold an answer, dropping the oldest beyond either bound."""
        old = self._answers.pop(order_id, None)
        if old is not None:
            self.decisions -= _decisions(old)
        weight = _decisions(answer)
        if weight > self.budget:
            return  # holding it would break the bound alone: a retry reads it from the store
        self._answers[order_id] = answer
        self.decisions += weight
        while len(self._answers) > self.size or self.decisions > self.budget:
            _, dropped = self._answers.popitem(last=False)
            self.decisions -= _decisions(dropped)
