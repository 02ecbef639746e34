"""Parsing of order requests: well-formed orders in, named field errors out."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)

from ledger import amounts, names
from ledger.answers import OrderRequest
from ledger.domain import Position
from ledger.names import Name

MAX_BODY = 64 * 1024
FIELDS = ("STRATEGY", "INSTRUMENT", "POSITION", "ORDER_ID", "QUANTITY", "PRICE")


class BadRequest(Exception):
    """The body is not a well-formed order; `errors` maps field names to messages."""

    def __init__(self, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        return {"error": self.message, "fields": self.errors}


def printable(value: str) -> bool:
    """No control characters and no lone surrogates: ledger.names.printable, kept for reads.py."""
    return names.printable(value)


PRICE_SCHEMA = {"anyOf": [amounts.POSITIVE_DECIMAL, {"type": "null"}]}


class OrderBody(BaseModel):
    """The order as posted: upper-case keys, as the original producer sends them."""

    model_config = ConfigDict(strict=True, extra="forbid")

    STRATEGY: Name
    INSTRUMENT: Name
    POSITION: Literal["BUY", "SELL"]
    ORDER_ID: Name | None = None
    QUANTITY: int | None = Field(
        None, ge=1, le=amounts.MAX_QUANTITY, description="whole units; 1 when not given"
    )

    PRICE: Annotated[Decimal | None, WithJsonSchema(PRICE_SCHEMA)] = Field(
        None,
        gt=0,
        max_digits=amounts.INTEGER_DIGITS + amounts.FRACTION_DIGITS,
        decimal_places=amounts.FRACTION_DIGITS,
        description="a JSON number (read exactly) or a string; answered as an exact string",
    )


def _normalise_keys(data: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        upper = key.upper()
        if upper not in FIELDS or key not in (upper, upper.lower()):
            errors[key[:64]] = "unexpected field"
        elif upper in out:
            errors[upper] = "given twice (upper and lower case)"
        else:
            out[upper] = value
    if errors:
        raise BadRequest("malformed order", errors)
    return out


def _read_again(raw: bytes, **how: Any) -> Any:
    """The body read by json, as orjson read it but for `how`; BadRequest if json cannot."""
    try:
        return json.loads(raw, **how)
    except RecursionError:
        # orjson reads 1,024 levels, json fewer: such a body is no order, and what json
        # checks in it (repeated keys, exact numbers) cannot be checked.
        raise BadRequest("malformed order", {"body": "nested too deeply"}) from None
    except ValueError as error:
        raise BadRequest("body is not valid JSON", {"body": str(error)[:200]}) from None


def _refuse_repeated_keys(raw: bytes, data: dict[str, Any]) -> None:
    """Refuse a key given twice: orjson, like json, silently keeps the last one."""
    # Every key is followed by one colon, so a repeat needs more colons than the dict has
    # keys: one C-speed count keeps the slow second parse to bodies with colons in values.
    if raw.count(b":") <= len(data):
        return
    pairs = _read_again(raw, object_pairs_hook=list)  # objects as pairs: repeats kept
    seen: set[str] = set()
    errors: dict[str, str] = {}
    for key, _ in pairs:
        if key in seen:
            errors[key[:64]] = "given twice"
        seen.add(key)
    if errors:
        raise BadRequest("malformed order", errors)


def _as_sent(exact: dict[str, Any], field: str) -> Any:
    """A field of the body read again, by the key it was sent with (one of the two)."""
    return exact[field] if field in exact else exact[field.lower()]


def _exact_numbers(raw: bytes, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """PRICE as an exact Decimal and QUANTITY as an exact whole number: a JSON number with a
    fraction or an exponent is read again from the body's text."""
    # orjson reads such numbers as floats (1.1 would be 1.100000000000000088..., and
    # 1.0000000000000001 would be 1): only a body with one pays for the second,
    # decimal-preserving parse.
    price, quantity = data.get("PRICE"), data.get("QUANTITY")
    errors: dict[str, str] = {}
    if isinstance(price, float) or isinstance(quantity, float):
        exact = _read_again(raw, parse_float=Decimal)
        if isinstance(price, float):
            price = _as_sent(exact, "PRICE")
        if isinstance(quantity, float):
            # An int here too when orjson took one past 64 bits for a float.
            number: Decimal | int = _as_sent(exact, "QUANTITY")
            # JSON Schema's integer includes 5.0 (a number whose fraction is zero): so does
            # this, exactly. orjson read it as a finite float: int() is at most 309 digits.
            if isinstance(number, int) or number == number.to_integral_value():
                data = {**data, "QUANTITY": int(number)}
            else:
                errors["QUANTITY"] = "must be a whole number"
                data = {**data, "QUANTITY": None}
    if price is None:
        return data, errors
    try:
        return {**data, "PRICE": Decimal(amounts.decimal(price))}, errors
    except amounts.AmountError as bad:
        return {**data, "PRICE": None}, {**errors, "PRICE": str(bad)}


def parse_order(raw: bytes) -> OrderRequest:
    """Turn a request body into an OrderRequest, or raise BadRequest."""
    if len(raw) > MAX_BODY:
        raise BadRequest(f"body larger than {MAX_BODY} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise BadRequest("body is not valid JSON", {"body": str(error)}) from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object", {"body": type(data).__name__})
    _refuse_repeated_keys(raw, data)
    # Keys first: PRICE and price together are refused before either is read.
    data, errors = _exact_numbers(raw, _normalise_keys(data))
    try:
        body = OrderBody.model_validate(data)
    except ValidationError as error:
        for item in error.errors(include_url=False, include_input=False):
            name = str(item["loc"][0]) if item["loc"] else "body"
            errors.setdefault(name, item["msg"])
        raise BadRequest("malformed order", errors) from None
    if errors:
        raise BadRequest("malformed order", errors)
    return OrderRequest(
        strategy=body.STRATEGY,
        instrument=body.INSTRUMENT,
        position=Position(body.POSITION),
        order_id=body.ORDER_ID,
        quantity=body.QUANTITY or 1,
        price=body.PRICE,
        quantity_given=body.QUANTITY is not None,
    )
