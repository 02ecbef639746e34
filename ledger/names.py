"""The one rule for user, strategy, instrument and ORDER_ID names, wherever they come from."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field

MAX_NAME = 64

# Exactly the Unicode categories Cc (C0, DEL, C1) and Cs (surrogates): control characters break
# logs and terminals, and a lone surrogate cannot be encoded as UTF-8. One regex search is much
# faster than a unicodedata lookup per character; tests/unit/test_names.py proves they agree.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_REFUSED = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# eventsourcing's stored JSON marks a typed value as an object of exactly the keys "_type_" and
# "_data_", and the store keeps that format. Names become keys of stored objects (an order's
# multipliers by user, a book's open positions by instrument): with both names as keys, the
# object reads back as a tag and its event can never be decoded again (the projection, the
# stream and retries of that order stop for good). So neither is a name.
RESERVED = frozenset({"_type_", "_data_"})

LENGTH_PROBLEM = f"must be 1-{MAX_NAME} characters"
CONTROL_PROBLEM = "must not contain control characters"
SURROGATE_PROBLEM = "must not contain lone surrogates"
RESERVED_PROBLEM = "is reserved: _type_ and _data_ mark typed values in stored events"
NFC_PROBLEM = (
    "must be in Unicode normal form C (NFC): the same text in another form would be another name"
)


def printable(value: str) -> bool:
    """True when `value` has no control character (Cc) and no lone surrogate (Cs)."""
    return _REFUSED.search(value) is None


def name_problem(value: object) -> str | None:
    """None for a valid name, else a short reason such as "must be 1-64 characters"."""
    if not isinstance(value, str):
        return "must be a string"
    if not 1 <= len(value) <= MAX_NAME:
        return LENGTH_PROBLEM
    if _CONTROL.search(value) is not None:
        return CONTROL_PROBLEM
    if _SURROGATE.search(value) is not None:
        return SURROGATE_PROBLEM
    # "Zoë" typed as e + combining diaeresis looks the same and would be another user, another
    # instrument or another ORDER_ID: refused, not silently changed (names are echoed exactly).
    if not unicodedata.is_normalized("NFC", value):
        return NFC_PROBLEM
    if value in RESERVED:
        return RESERVED_PROBLEM
    return None


def valid_name(value: object) -> bool:
    """True for a str of 1-64 characters with no control character and no lone surrogate, in
    NFC, other than the RESERVED ones."""
    return (
        isinstance(value, str)
        and 1 <= len(value) <= MAX_NAME
        and printable(value)
        and unicodedata.is_normalized("NFC", value)
        and value not in RESERVED
    )


def _checked(value: str) -> str:
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# The pattern and NOT_RESERVED only describe the rule in JSON Schema (OpenAPI): clients and
# generators see it.
PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
NOT_RESERVED = {"enum": sorted(RESERVED)}
Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_NAME,
        description="1-64 characters, no control characters, in Unicode NFC",
        json_schema_extra={"pattern": PATTERN, "not": NOT_RESERVED},
    ),
    AfterValidator(_checked),
]
