"""Quantities, prices and multipliers: exact decimals, and the defaults of older events."""

from __future__ import annotations

import re
from decimal import Context, Decimal, InvalidOperation
from typing import Any

MAX_QUANTITY = 10**9
INTEGER_DIGITS = 12  # at most, before the point (prices and multipliers)
FRACTION_DIGITS = 8  # at most, after it
# A positive decimal of at most 12 + 8 digits as a JSON Schema string, whose rule a pattern can
# state exactly; request models describe prices and multipliers with it (a JSON number is
# accepted too, as their descriptions say, but no schema can state its digit limits).
POSITIVE_DECIMAL: dict[str, str] = {
    "type": "string",
    "pattern": r"^([1-9][0-9]{0,11}(\.[0-9]{1,8})?|0\.[0-9]{0,7}[1-9])$",
}
ONE = "1"

# Enough digits for a quantity times a multiplier (10 + 20) to stay exact.
_EXACT = Context(prec=64)
_PLAIN = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)


class AmountError(ValueError):
    """A value is not a usable quantity, price or multiplier; the message says why."""


def canonical(value: Decimal) -> str:
    """The one spelling of a decimal: no exponent, no trailing zeros after the point."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def decimal(value: object) -> str:
    """A positive decimal within the digit limits, as its canonical string; else AmountError."""
    if isinstance(value, str) and not _PLAIN.fullmatch(value):
        msg = "must be a decimal number such as 12.5 (digits, one optional point)"
        raise AmountError(msg)
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        msg = "must be a decimal number or a string of one"
        raise AmountError(msg)
    number = Decimal(value)
    if not number.is_finite() or number <= 0:
        msg = "must be greater than 0"
        raise AmountError(msg)
    # The exponent first: written out, a JSON number such as 1e-999999999 is a billion digits
    # (measured: a 30-byte body held an HTTP worker for 4 s and 2 GB).
    if number.adjusted() >= INTEGER_DIGITS:
        msg = f"at most {INTEGER_DIGITS} digits before the point"
        raise AmountError(msg)
    if number.adjusted() < -FRACTION_DIGITS:
        msg = f"at most {FRACTION_DIGITS} digits after the point"
        raise AmountError(msg)
    text = canonical(number)
    whole, _, fraction = text.partition(".")
    if len(whole.lstrip("0")) > INTEGER_DIGITS:
        msg = f"at most {INTEGER_DIGITS} digits before the point"
        raise AmountError(msg)
    if len(fraction) > FRACTION_DIGITS:
        msg = f"at most {FRACTION_DIGITS} digits after the point"
        raise AmountError(msg)
    return text


def quantity(value: object) -> int:
    """A positive whole quantity of at most MAX_QUANTITY; else AmountError."""
    if not isinstance(value, int) or isinstance(value, bool):
        msg = "must be a whole number"
        raise AmountError(msg)
    if not 1 <= value <= MAX_QUANTITY:
        msg = f"must be between 1 and {MAX_QUANTITY}"
        raise AmountError(msg)
    return value


def booked(order_quantity: int, multiplier: str) -> str:
    """A user's booked quantity: the order's quantity times the user's multiplier, exactly."""
    if multiplier == ONE:
        return str(order_quantity)
    try:
        return canonical(_EXACT.multiply(Decimal(order_quantity), Decimal(multiplier)))
    except InvalidOperation as bad:  # a stored multiplier is always a valid decimal
        raise AmountError(str(bad)) from None


# Events stored before quantities existed lack these attributes: eventsourcing rebuilds an event
# from its stored dict, so only the aggregates' @event methods see the defaults. Every reader of
# stored events takes the numbers through these functions, so the defaults are written once.


def order_numbers(placed: Any) -> tuple[int, str | None, dict[str, str] | None]:
    """An Order.Placed event's (or Order's) quantity, price and multipliers (not 1 only)."""
    return (
        getattr(placed, "quantity", 1),
        getattr(placed, "price", None),
        getattr(placed, "multipliers", None),
    )


def opened_numbers(opened: Any) -> tuple[str, int, str | None]:
    """A Book.PositionOpened event's booked quantity, the BUY's quantity, and its price."""
    return (
        getattr(opened, "quantity", ONE),
        getattr(opened, "order_quantity", 1),
        getattr(opened, "price", None),
    )


def closed_numbers(closed: Any) -> tuple[str, str | None, str | None]:
    """A Book.PositionClosed event's booked quantity closed, exit price and entry price."""
    return (
        getattr(closed, "quantity", ONE),
        getattr(closed, "price", None),
        getattr(closed, "entry_price", None),
    )


def multiplier_of(changed: Any) -> str:
    """A Book.StrategyTakenUp or InstrumentsChanged event's (or a Book's) multiplier."""
    return getattr(changed, "multiplier", ONE)
