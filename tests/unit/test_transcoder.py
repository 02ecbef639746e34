"""The stored-event decoder reads exactly what eventsourcing's JSON transcoder wrote."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, UUIDAsHex
from hypothesis import example, given
from hypothesis import strategies as st

from ledger.names import RESERVED, valid_name
from ledger.store.transcoder import OrjsonTranscoder


def registered(transcoder: JSONTranscoder) -> JSONTranscoder:
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return transcoder


ORJSON = registered(OrjsonTranscoder())
STDLIB = registered(JSONTranscoder())

leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(["_type_", "_data_", '"_type_"'])  # read like a tag's bytes
    | st.datetimes(timezones=st.just(UTC))
    | st.uuids()
    | st.decimals(allow_nan=False, allow_infinity=False)
)
keys = st.text() | st.sampled_from(["_type_", "_data_"])


def untagged(d: dict[str, Any]) -> bool:
    """Not shaped like a tag: eventsourcing's own transcoder cannot store such a dict."""
    return not (len(d) == 2 and "_type_" in d and "_data_" in d)


values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(keys, children, max_size=4).filter(untagged)
    ),
    max_leaves=20,
)


@given(state=st.dictionaries(keys, values, max_size=6).filter(untagged))
def test_round_trip_equals_the_stdlib_transcoder(state: dict[str, Any]) -> None:
    stored = ORJSON.encode(state)
    assert ORJSON.decode(stored) == STDLIB.decode(stored) == state


def test_an_order_event_state_round_trips() -> None:
    state = {
        "timestamp": datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
        "originator_topic": "ledger.domain:Order",
        "order_id": "L&T-Сбер",
        "accepted_for": ["Holland Proctor"],
        "rejected_for": [{"user": "Kamryn Li", "reason": "ALREADY_OPEN"}],
        "reason": None,
        "id": UUID(int=7),
        "amount": Decimal("1.10"),
    }
    decoded = ORJSON.decode(ORJSON.encode(state))
    assert decoded == state
    assert isinstance(decoded["timestamp"], datetime)
    assert isinstance(decoded["id"], UUID)


@given(st.lists(st.text(min_size=1, max_size=8) | st.sampled_from(sorted(RESERVED)), max_size=4))
@example(["_type_", "_data_"])
def test_names_as_keys_of_stored_values_read_back_as_stored(names: list[str]) -> None:
    """Names are keys of stored values (an order's multipliers by user, a book's open
    positions by instrument): any two the name rule lets in must never read as a tag."""
    state = {"multipliers": {name: "2" for name in names if valid_name(name)}}
    stored = STDLIB.encode(state)
    assert ORJSON.decode(stored) == STDLIB.decode(stored) == state
