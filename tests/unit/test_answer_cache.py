"""The answer cache is bounded by answers and by decisions, so by memory whatever the fan-out."""

from __future__ import annotations

import gc
import tracemalloc
from dataclasses import replace

from ledger.answer_cache import DECISION_BUDGET, AnswerCache
from ledger.answers import OrderAnswer
from ledger.domain import Outcome, Position, Reason

MB = 1024 * 1024


def answer(order_id: str, accepted: int = 1, rejected: int = 0) -> OrderAnswer:
    """An answer with that many decisions, each user name a string of its own."""
    return OrderAnswer(
        RESPONSE=Outcome.ACCEPTED if accepted else Outcome.REJECTED,
        order_id=order_id,
        sequence=1,
        strategy="STRATEGY_A",
        instrument="MINDA",
        position=Position.BUY,
        accepted_for=[f"{order_id} user number {n:06d}" for n in range(accepted)],
        rejected_for=[
            {"user": f"{order_id} user number {n:06d}", "reason": Reason.ALREADY_OPEN}
            for n in range(rejected)
        ],
        reason=None,
        quantity=1,
        price=None,
    )


def test_the_count_bound_drops_the_oldest() -> None:
    cache = AnswerCache(size=2)
    for order_id in ("a", "b", "c"):
        cache.put(order_id, answer(order_id))
    assert cache.get("a") is None
    assert cache.get("b") is not None
    assert cache.get("c") is not None


def test_the_decision_bound_drops_the_oldest_until_it_fits() -> None:
    cache = AnswerCache(size=100, decisions=25)
    cache.put("a", answer("a", accepted=5, rejected=4))  # 10 with the order itself
    cache.put("b", answer("b", accepted=0, rejected=9))  # 10
    assert cache.decisions == 20
    cache.put("c", answer("c", accepted=9))  # 10: "a" must go
    assert cache.get("a") is None
    assert cache.get("b") is not None
    assert cache.get("c") is not None
    assert cache.decisions == 20


def test_storing_an_id_again_counts_it_once() -> None:
    cache = AnswerCache(size=100, decisions=25)
    for _ in range(5):
        cache.put("a", answer("a", accepted=9))
    assert cache.decisions == 10
    assert cache.get("a") is not None


def test_an_answer_over_the_whole_budget_is_not_held() -> None:
    cache = AnswerCache(size=100, decisions=25)
    cache.put("small", answer("small"))
    cache.put("huge", answer("huge", rejected=30))
    assert cache.get("huge") is None  # the store still has it
    assert cache.get("small") is not None
    assert cache.decisions == 2


def test_a_full_budget_stays_under_100_mb_whatever_the_fan_out() -> None:
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        cache = AnswerCache()
        # Every decision a rejection with a name of its own: the costliest kind measured.
        for n in range(5):
            cache.put(f"o{n}", answer(f"o{n}", accepted=0, rejected=10_000))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    per_decision = held / cache.decisions
    assert DECISION_BUDGET * per_decision < 100 * MB, f"{per_decision:.0f} bytes a decision"
    big = answer("big", accepted=0, rejected=10_000)
    for n in range(5, 2 * DECISION_BUDGET // 10_000):  # and full is where it stays
        cache.put(f"o{n}", replace(big, order_id=f"o{n}"))
    assert DECISION_BUDGET - 10_001 < cache.decisions <= DECISION_BUDGET
