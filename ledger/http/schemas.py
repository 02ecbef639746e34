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
    field_validator,
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

    @field_validator("QUANTITY", mode="before")
    @classmethod
    def _whole(cls, value: Any) -> Any:
        # JSON Schema's integer includes 5.0 (a number whose fraction is zero): so does this.
        if type(value) is float and value.is_integer():
            return int(value)
        return value

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


def _refuse_repeated_keys(raw: bytes, data: dict[str, Any]) -> None:
    """Refuse a key given twice: orjson, like json, silently keeps the last one."""
    # Every key is followed by one colon, so a repeat needs more colons than the dict has
    # keys: one C-speed count keeps the slow second parse to bodies with colons in values.
    if raw.count(b":") <= len(data):
        return
    try:
        pairs = json.loads(raw, object_pairs_hook=list)  # objects as pairs: repeats kept
    except (ValueError, RecursionError):
        return  # deep nesting: no field can be a nested value, validation names it
    seen: set[str] = set()
    errors: dict[str, str] = {}
    for key, _ in pairs:
        if key in seen:
            errors[key[:64]] = "given twice"
        seen.add(key)
    if errors:
        raise BadRequest("malformed order", errors)


def _exact_price(raw: bytes, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """PRICE as an exact Decimal: a JSON number is read again from the body's text."""
    # orjson reads numbers as floats (1.1 would be 1.100000000000000088...): only a body with
    # a fractional or exponent PRICE pays for the second, decimal-preserving parse.
    value = data.get("PRICE")
    if isinstance(value, float):
        exact = json.loads(raw, parse_float=Decimal)  # keys as sent: one of the two
        value = exact["PRICE"] if "PRICE" in exact else exact["price"]
    if value is None:
        return data, {}
    try:
        return {**data, "PRICE": Decimal(amounts.decimal(value))}, {}
    except amounts.AmountError as bad:
        return {**data, "PRICE": None}, {"PRICE": str(bad)}


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
    data, errors = _exact_price(raw, _normalise_keys(data))
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
