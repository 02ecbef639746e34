"""A request's parts answered apart (slices, writers) and merged as the HTTP worker does."""

from __future__ import annotations

import dataclasses

import orjson
from hypothesis import given
from hypothesis import strategies as st

from ledger.http.users import Merged
from ledger.user_answers import BookChange, Change, ChangeAnswer, joined, last_written

names = st.text(alphabet="abcXYZ_ é", min_size=1, max_size=6)
sequences = st.none() | st.integers(min_value=1, max_value=10**12)
changes = st.builds(
    BookChange,
    user=names,
    strategy=names,
    instruments=st.lists(names, max_size=3),
    change=st.sampled_from(list(Change)),
    kept_open=st.lists(names, max_size=2),
    multiplier=st.sampled_from(["1", "2.5"]),
    sequence=sequences,
)
answers = st.builds(
    ChangeAnswer,
    unchanged=st.integers(min_value=0, max_value=10**6),
    sequence=sequences,
    dry_run=st.just(False),
    changes=st.lists(changes, max_size=4),
)


@given(st.lists(answers, min_size=1, max_size=5))
def test_merging_the_wire_answers_equals_joining_them(parts: list[ChangeAnswer]) -> None:
    """The worker reads the numbers and joins the changes' JSON without parsing them: the
    result is the answer the writer would give for the parts joined."""
    merged = Merged()
    for part in parts:
        merged.add(orjson.dumps(part))
    whole = joined(parts)
    assert merged.unchanged == whole.unchanged
    assert merged.sequence == whole.sequence
    assert merged.changes() == whole.changes
    assert orjson.loads(orjson.dumps(merged.changes_json())) == orjson.loads(
        orjson.dumps(whole.changes)
    )


def test_the_changes_come_last_in_an_answer() -> None:
    """Merged finds where the numbers end by the changes' key: it must be the last field."""
    assert [f.name for f in dataclasses.fields(ChangeAnswer)][-1] == "changes"


@given(st.lists(sequences, max_size=6))
def test_the_last_written_sequence(values: list[int | None]) -> None:
    """The greatest sequence written; None when no part wrote anything."""
    written = [v for v in values if v is not None]
    assert last_written(values) == (max(written) if written else None)
