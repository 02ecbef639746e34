"""The per-order log line is logfmt: no ORDER_ID, strategy or instrument can forge a field."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.answers import OrderAnswer
from ledger.domain import Outcome, Position, Reason
from ledger.logs import order_line

KEYS = ["order_id", "seq", "strategy", "instrument", "position", "response"]
KEYS += ["accepted", "rejected"]
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
PAIR = re.compile(r' *([^ =]+)=("(?:[^"\\]|\\.)*"|[^ ]*)')


def parse(line: str) -> list[tuple[str, str]]:
    """A logfmt line's key=value pairs in order, quoted values unescaped; strict."""
    pairs: list[tuple[str, str]] = []
    at = 0
    while at < len(line):
        match = PAIR.match(line, at)
        assert match is not None and match.end() > at, f"not logfmt at {at}: {line!r}"
        key, value = match.groups()
        if value.startswith('"'):
            value = re.sub(
                r"\\(u[0-9a-f]{4}|U[0-9a-f]{8}|.)",
                lambda m: ESCAPES.get(m[1]) or chr(int(m[1][1:], 16)),
                value[1:-1],
            )
        pairs.append((key, value))
        at = match.end()
    return pairs


def answer(order_id: str, strategy: str = "STRATEGY_B", instrument: str = "MINDA") -> OrderAnswer:
    """An accepted BUY for one user, refused for another."""
    return OrderAnswer(
        RESPONSE=Outcome.ACCEPTED,
        order_id=order_id,
        sequence=42,
        strategy=strategy,
        instrument=instrument,
        position=Position.BUY,
        accepted_for=["Holland Proctor"],
        rejected_for=[{"user": "Kamryn Li", "reason": Reason.INSTRUMENT_NOT_IN_STRATEGY}],
        reason=None,
        quantity=1,
        price=None,
    )


def test_plain_values_give_the_line_as_before() -> None:
    line = order_line(answer("sig-1"), reused_id=False)
    assert line == (
        "order_id=sig-1 seq=42 strategy=STRATEGY_B instrument=MINDA position=BUY"
        " response=ACCEPTED accepted=1 rejected=1"
    )
    assert order_line(answer("sig-1"), reused_id=True) == line + " order_id_reused=yes"


@pytest.mark.parametrize(
    "forged",
    [
        "x seq=1 response=ACCEPTED",
        'x" seq=1 response="REJECTED',
        'x\\" seq=1 response=REJECTED',
        "x\nseq=1 response=REJECTED",
        "x\u00a0seq=1\u00a0response=REJECTED",
        "=",
        "",
    ],
)
def test_a_forged_order_id_stays_one_value(forged: str) -> None:
    pairs = parse(order_line(answer(forged), reused_id=False))
    assert [key for key, _ in pairs] == KEYS
    assert pairs[0] == ("order_id", forged)
    assert dict(pairs)["seq"] == "42"
    assert dict(pairs)["response"] == "ACCEPTED"


def test_the_forged_example_is_quoted_logfmt_style() -> None:
    line = order_line(answer("x seq=1 response=ACCEPTED"), reused_id=False)
    assert line.startswith('order_id="x seq=1 response=ACCEPTED" seq=42 ')
    assert "\n" not in order_line(answer("a\nb"), reused_id=False)


@given(st.text(max_size=64), st.text(max_size=64), st.text(max_size=64))
def test_any_strings_parse_back_to_themselves(
    order_id: str, strategy: str, instrument: str
) -> None:
    line = order_line(answer(order_id, strategy, instrument), reused_id=True)
    pairs = parse(line)
    assert [key for key, _ in pairs] == [*KEYS, "order_id_reused"]
    assert pairs[:4] == [
        ("order_id", order_id),
        ("seq", "42"),
        ("strategy", strategy),
        ("instrument", instrument),
    ]
    assert line.isprintable()
