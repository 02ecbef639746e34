"""Parsing of order requests: well-formed orders in, named field errors out."""

from __future__ import annotations

import json
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from ledger import names
from ledger.answers import OrderRequest
from ledger.domain import Position
from ledger.names import Name

MAX_BODY = 64 * 1024
FIELDS = ("STRATEGY", "INSTRUMENT", "POSITION", "ORDER_ID")


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


class OrderBody(BaseModel):
    """The order as posted: upper-case keys, as the original producer sends them."""

    model_config = ConfigDict(strict=True, extra="forbid")

    STRATEGY: Name
    INSTRUMENT: Name
    POSITION: Literal["BUY", "SELL"]
    ORDER_ID: Name | None = None


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
    try:
        body = OrderBody.model_validate(_normalise_keys(data))
    except ValidationError as error:
        errors: dict[str, str] = {}
        for item in error.errors(include_url=False, include_input=False):
            name = str(item["loc"][0]) if item["loc"] else "body"
            errors.setdefault(name, item["msg"])
        raise BadRequest("malformed order", errors) from None
    return OrderRequest(
        strategy=body.STRATEGY,
        instrument=body.INSTRUMENT,
        position=Position(body.POSITION),
        order_id=body.ORDER_ID,
    )
