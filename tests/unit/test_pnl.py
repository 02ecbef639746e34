"""Realised P&L per user and per strategy, from the fold's trades, against a model."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.answers import Pnl
from projections.fold import Key, Opened, fold
from projections.pnl import Tally, summary
from projections.queries import Filters
from tests.unit.test_fold import INSTRUMENTS, STRATEGIES, USERS, Stream, streams

FILTERS = st.builds(
    Filters,
    st.none() | st.sampled_from(USERS),
    st.none() | st.sampled_from(STRATEGIES),
    st.none() | st.sampled_from(INSTRUMENTS),
)


def model(stream: Stream, filters: Filters, by: int) -> dict[str, dict[str, Any]]:
    """Per user (by=0) or strategy (by=1): the P&L sum and the counts, from the model's trades."""
    lines: dict[str, dict[str, Any]] = {}
    for key, *_, pnl in stream.trades:
        if not filters.matches(key):
            continue
        line = lines.setdefault(
            key[by],
            {"realised_pnl": Fraction(0), "trades": 0, "winners": 0, "losers": 0, "unpriced": 0},
        )
        line["trades"] += 1
        if pnl is None:
            line["unpriced"] += 1
            continue
        line["realised_pnl"] += pnl
        line["winners"] += pnl > 0
        line["losers"] += pnl < 0
    return lines


def shown(lines: list[Any], name: str) -> dict[str, dict[str, Any]]:
    """An answer's lines as the model's, the sums read back exactly."""
    result = {}
    for line in lines:
        fields = {f: getattr(line, f) for f in ("trades", "winners", "losers", "unpriced")}
        assert "E" not in line.realised_pnl and line.realised_pnl != "-0"
        result[getattr(line, name)] = {"realised_pnl": Fraction(line.realised_pnl), **fields}
    return result


@settings(max_examples=100, deadline=None)
@given(stream=streams(), filters=FILTERS)
def test_pnl_per_user_and_strategy_agrees_with_the_model(stream: Stream, filters: Filters) -> None:
    open_: dict[Key, Opened] = {}
    trades = [t for t in fold(stream.orders, open_) if filters.matches(t.key)]
    answer: Pnl = summary((t.key[0], t.key[1], Tally.of(t.realised_pnl)) for t in trades)
    assert shown(answer.by_user, "user") == model(stream, filters, 0)
    assert shown(answer.by_strategy, "strategy") == model(stream, filters, 1)
    assert [line.user for line in answer.by_user] == sorted(model(stream, filters, 0))
    everyone = model(stream, filters, 0).values()
    total = answer.total
    assert Fraction(total.realised_pnl) == sum((m["realised_pnl"] for m in everyone), Fraction(0))
    assert total.trades == sum(m["trades"] for m in everyone)
    flat = sum(1 for key, *_, pnl in stream.trades if pnl == 0 and filters.matches(key))
    assert total.trades == total.winners + total.losers + total.unpriced + flat


def test_no_trades_is_zero_and_a_trade_at_no_gain_neither_wins_nor_loses() -> None:
    assert summary([]) == Pnl([], [], summary([]).total)
    assert summary([]).total.realised_pnl == "0"
    flat = summary([("u", "S", Tally.of(Decimal("0.00")))])
    assert (flat.total.realised_pnl, flat.total.winners, flat.total.losers) == ("0", 0, 0)
    unknown = summary([("u", "S", Tally.of(None)), ("u", "S", Tally.of(Decimal("-2.50")))])
    assert unknown.by_user[0].realised_pnl == "-2.5"
    assert (unknown.total.trades, unknown.total.losers, unknown.total.unpriced) == (2, 1, 1)
