"""The one rule for user, strategy, instrument and ORDER_ID names, wherever they come from."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

MAX_NAME = 64

# Exactly the Unicode categories Cc (C0, DEL, C1) and Cs (surrogates): control characters break
# logs and terminals, and a lone surrogate cannot be encoded as UTF-8. One regex search is much
# faster than a unicodedata lookup per character; tests/unit/test_names.py proves they agree.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_REFUSED = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

LENGTH_PROBLEM = f"must be 1-{MAX_NAME} characters"
CONTROL_PROBLEM = "must not contain control characters"
SURROGATE_PROBLEM = "must not contain lone surrogates"


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
    return None


def valid_name(value: object) -> bool:
    """True for a str of 1-64 characters with no control character and no lone surrogate."""
    return isinstance(value, str) and 1 <= len(value) <= MAX_NAME and printable(value)


def _checked(value: str) -> str:
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# The pattern only describes the rule in JSON Schema (OpenAPI): clients and generators see it.
PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
Name = Annotated[
    str,
    Field(min_length=1, max_length=MAX_NAME, json_schema_extra={"pattern": PATTERN}),
    AfterValidator(_checked),
]
