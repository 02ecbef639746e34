"""Order bodies: a key given twice is refused, naming it, however it is spelled."""

from __future__ import annotations

import pytest

from ledger.domain import Position
from ledger.http.schemas import BadRequest, parse_order


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"STRATEGY":"A","STRATEGY":"B","INSTRUMENT":"I","POSITION":"BUY"}', "STRATEGY"),
        (b'{"STRATEGY" : "A", "INSTRUMENT":"I","POSITION":"BUY","STRATEGY" :"A"}', "STRATEGY"),
        (b'{"STRATEGY":"A","INSTRUMENT":"I","POSITION":"BUY","POSITION":"SELL"}', "POSITION"),
        (b'{"STRATEGY":"A","INSTRUMENT":"I","POSITION":"BUY","\\u0050OSITION":"SELL"}', "POSITION"),
        (
            b'{"strategy":"A","instrument":"I","position":"BUY","order_id":"x","order_id":"y"}',
            "order_id",
        ),
    ],
)
def test_a_key_given_twice_is_refused_by_name(raw: bytes, field: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_order(raw)
    assert field in refused.value.errors
    assert "twice" in refused.value.errors[field]


def test_colons_inside_values_are_still_an_order() -> None:
    order = parse_order(b'{"STRATEGY":"A:1","INSTRUMENT":"I:2","POSITION":"BUY","ORDER_ID":"x:y"}')
    assert (order.strategy, order.instrument, order.order_id) == ("A:1", "I:2", "x:y")
    assert order.position is Position.BUY


def test_a_nested_duplicate_is_the_nested_field_s_problem() -> None:
    with pytest.raises(BadRequest) as refused:
        parse_order(b'{"STRATEGY":{"a":1,"a":2},"INSTRUMENT":"I","POSITION":"BUY"}')
    assert set(refused.value.errors) == {"STRATEGY"}
