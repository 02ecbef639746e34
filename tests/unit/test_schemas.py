"""Order bodies: a key given twice is refused, naming it, however it is spelled."""

from __future__ import annotations

import tracemalloc

import pytest

from ledger.amounts import canonical
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


ORDER = b'"STRATEGY":"A","INSTRUMENT":"I","POSITION":"BUY"'


def order_with(more: str) -> bytes:
    return b"{" + ORDER + b"," + more.encode() + b"}"


def test_the_original_producer_s_order_is_quantity_1_at_no_price() -> None:
    order = parse_order(b"{" + ORDER + b"}")
    assert (order.quantity, order.price, order.quantity_given) == (1, None, False)
    assert order.asked_quantity is None


@pytest.mark.parametrize(
    ("more", "price"),
    [
        ('"PRICE": 1.1', "1.1"),
        ('"PRICE": "1.1"', "1.1"),
        ('"PRICE": 1.10', "1.1"),
        ('"PRICE": 0.30000000000000004', None),  # 17 places: over the limit, not rounded
        ('"PRICE": 100', "100"),
        ('"PRICE": 1e2', "100"),
        ('"PRICE": 999999999999.99999999', "999999999999.99999999"),
        ('"PRICE": "0.00000001"', "0.00000001"),
        ('"price": 2.675', "2.675"),
        ('"PRICE": null', "absent"),
    ],
)
def test_a_price_is_read_exactly(more: str, price: str | None) -> None:
    if price is None:
        with pytest.raises(BadRequest) as refused:
            parse_order(order_with(more))
        assert set(refused.value.errors) == {"PRICE"}
        return
    order = parse_order(order_with(more.replace('"price"', '"PRICE"')))
    lower = parse_order(order_with(more.lower()))
    assert order.price == lower.price
    assert (canonical(order.price) if order.price is not None else "absent") == price


@pytest.mark.parametrize(
    "more",
    [
        '"PRICE": 0',
        '"PRICE": -1.5',
        '"PRICE": "0"',
        '"PRICE": "abc"',
        '"PRICE": "1e2"',
        '"PRICE": " 1"',
        '"PRICE": "NaN"',
        '"PRICE": true',
        '"PRICE": [1]',
        '"PRICE": 1234567890123',
        '"PRICE": 1.000000001',
        '"PRICE": "1.000000001"',
    ],
)
def test_a_bad_price_is_422_naming_it(more: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_order(order_with(more))
    assert set(refused.value.errors) == {"PRICE"}


@pytest.mark.parametrize(
    "more",
    [
        '"QUANTITY": 0',
        '"QUANTITY": -3',
        '"QUANTITY": 1000000001',
        '"QUANTITY": 2.5',
        '"QUANTITY": 1e10',
        '"QUANTITY": "2"',
        '"QUANTITY": true',
        # Whole as a float, not exactly: orjson reads each of these as a whole number.
        '"QUANTITY": 0.99999999999999999',
        '"QUANTITY": 1.0000000000000001',
        '"quantity": 1000000000.00000001',
        '"QUANTITY": 1e-999999999',
        '"QUANTITY": 1000000000000000000000000000000',
    ],
)
def test_a_bad_quantity_is_422_naming_it(more: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_order(order_with(more))
    assert set(refused.value.errors) == {"QUANTITY"}


def test_quantity_bounds_and_lower_case_keys() -> None:
    assert parse_order(order_with('"QUANTITY": 1000000000')).quantity == 10**9
    # JSON Schema's integers include numbers with a zero fraction: the OpenAPI document says so.
    assert parse_order(order_with('"QUANTITY": 2.0')).quantity == 2
    assert parse_order(order_with('"quantity": 3e2')).quantity == 300
    order = parse_order(b'{"strategy":"A","instrument":"I","position":"SELL","quantity":1}')
    assert (order.quantity, order.quantity_given, order.asked_quantity) == (1, True, 1)


def test_price_and_quantity_errors_are_named_together_with_the_others() -> None:
    with pytest.raises(BadRequest) as refused:
        parse_order(b'{"STRATEGY":"","INSTRUMENT":"I","POSITION":"BUY","PRICE":-1,"QUANTITY":0}')
    assert set(refused.value.errors) == {"STRATEGY", "PRICE", "QUANTITY"}


def test_price_given_in_both_cases_is_refused() -> None:
    with pytest.raises(BadRequest) as refused:
        parse_order(order_with('"PRICE": 1.5, "price": 1.5'))
    assert "twice" in refused.value.errors["PRICE"]


@pytest.mark.parametrize(
    "more",
    [
        '"PRICE": 1e-99999999',
        '"price": 1e-9999999999999',
        '"PRICE": 1e300',  # about the largest orjson reads (a float): 301 digits
    ],
)
def test_a_price_s_exponent_is_refused_before_its_digits_are_written(more: str) -> None:
    # 1e-99999999 written out is 100 MB of digits: the check must not build it.
    tracemalloc.start()
    try:
        with pytest.raises(BadRequest) as refused:
            parse_order(order_with(more))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert set(refused.value.errors) == {"PRICE"}
    assert peak < 2**20


DEEP = 1010  # orjson reads up to 1,024 levels, Python's json fewer


@pytest.mark.parametrize(
    "raw",
    [
        b'{"STRATEGY":"A","INSTRUMENT":"I","POSITION":"BUY","PRICE":1.5,"ORDER_ID":'
        + b"[" * DEEP
        + b"]" * DEEP
        + b"}",
        # A key given twice behind deep nesting: not stored with the second value.
        b'{"STRATEGY":' + b"[" * DEEP + b"]" * DEEP + b',"STRATEGY":"A","INSTRUMENT":"I",'
        b'"POSITION":"BUY","ORDER_ID":"x"}',
        b'{"PRICE":' + b"[" * DEEP + b"]" * DEEP + b',"PRICE":1.5,"STRATEGY":"A",'
        b'"INSTRUMENT":"I","POSITION":"BUY"}',
    ],
)
def test_deep_nesting_is_422_not_an_order(raw: bytes) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_order(raw)
    assert refused.value.errors == {"body": "nested too deeply"}
