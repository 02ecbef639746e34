"""One name rule: ledger.names, the profile loader and the order parser agree."""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from ledger import names, profiles
from ledger.http.schemas import BadRequest, parse_order, printable
from ledger.names import MAX_NAME, Name, name_problem, valid_name

# Every code point, surrogates included (hypothesis leaves Cs out unless told otherwise).
ANY_CHAR = st.characters(exclude_categories=())


def refused_by_category(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cs")


def reference(value: object) -> bool:
    """The rule as specified, one character at a time."""
    return (
        isinstance(value, str)
        and 1 <= len(value) <= MAX_NAME
        and not any(refused_by_category(ch) for ch in value)
        and unicodedata.normalize("NFC", value) == value
        and value not in ("_type_", "_data_")
    )


def test_regex_equals_the_categories_for_every_code_point() -> None:
    refused = [chr(c) for c in range(sys.maxunicode + 1) if not names.printable(chr(c))]
    expected = [chr(c) for c in range(sys.maxunicode + 1) if refused_by_category(chr(c))]
    assert refused == expected
    ranges = [(0x00, 0x1F), (0x7F, 0x9F), (0xD800, 0xDFFF)]
    assert refused == [chr(c) for low, high in ranges for c in range(low, high + 1)]


@settings(database=None)
@given(ANY_CHAR)
def test_one_character_matches_the_categories(ch: str) -> None:
    assert names.printable(ch) is not refused_by_category(ch)
    assert valid_name(ch) is reference(ch)


@pytest.mark.parametrize(
    "twin",
    [
        "Zoe\u0308",  # e + combining diaeresis: "Zoë" as NFD writes it
        "\u212b",  # ANGSTROM SIGN, which NFC writes as Å (U+00C5)
        "A\u030a",  # A + combining ring above
    ],
)
def test_a_name_not_in_nfc_is_refused_everywhere(twin: str, tmp_path: Path) -> None:
    assert name_problem(twin) == names.NFC_PROBLEM
    assert not valid_name(twin)
    assert valid_name(unicodedata.normalize("NFC", twin))  # the same text, as NFC writes it
    with pytest.raises(BadRequest) as refused:
        parse_order(json.dumps({"STRATEGY": "S", "INSTRUMENT": twin, "POSITION": "BUY"}).encode())
    assert "NFC" in refused.value.errors["INSTRUMENT"]
    with pytest.raises(profiles.ProfileError, match="NFC"):
        profiles.parse(json.dumps({twin: {"S": ["ACC"]}}).encode())


@settings(database=None)
@given(st.text(alphabet=ANY_CHAR, max_size=MAX_NAME + 8))
def test_names_match_the_reference_rule(value: str) -> None:
    assert valid_name(value) is reference(value)
    assert (name_problem(value) is None) is reference(value)
    assert names.printable(value) is printable(value)


@pytest.mark.parametrize(
    ("length", "problem"),
    [(0, "must be 1-64 characters"), (1, None), (64, None), (65, "must be 1-64 characters")],
)
def test_length_boundaries(length: int, problem: str | None) -> None:
    value = "x" * length
    assert name_problem(value) == problem
    assert valid_name(value) is (problem is None)
    adapter = TypeAdapter(Name)
    if problem is None:
        assert adapter.validate_python(value) == value
    else:
        with pytest.raises(ValidationError):
            adapter.validate_python(value)


def test_length_counts_code_points() -> None:
    assert valid_name("\N{GRINNING FACE}" * 64)
    assert not valid_name("\N{GRINNING FACE}" * 65)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "must be a string"),
        (7, "must be a string"),
        (b"bytes", "must be a string"),
        ("a\x00", "must not contain control characters"),
        ("\x7f", "must not contain control characters"),
        ("C1 \x85", "must not contain control characters"),
        ("\ud800", "must not contain lone surrogates"),
        ("_type_", "is reserved: _type_ and _data_ mark typed values in stored events"),
        ("_data_", "is reserved: _type_ and _data_ mark typed values in stored events"),
    ],
)
def test_problems_are_short_reasons(value: object, problem: str) -> None:
    assert name_problem(value) == problem
    assert not valid_name(value)


def test_pydantic_type_uses_the_same_rule() -> None:
    adapter = TypeAdapter(Name)
    with pytest.raises(ValidationError, match="must not contain control characters"):
        adapter.validate_python("bad\x9f")
    assert adapter.validate_python("Jada Marsh") == "Jada Marsh"


SAMPLE = [
    "Jada Marsh",
    "L&T",
    "STRATEGY_A",
    " ",
    "x" * 64,
    "é" * 64,
    "\N{GRINNING FACE}",
    "\xa0nbsp",
    "zero\u200bwidth",
    "line\u2028separator",
    "",
    "x" * 65,
    "\x00",
    "tab\there",
    "new\nline",
    "\x1f",
    "\x7f",
    "\x80",
    "next line \x85",
    "\x9f",
    "\ud800",
    "lone \udfff",
    "_type_",
    "_data_",
    "_type",
    "_DATA_",
    " _type_",
]


def profile_accepts(tmp_path: Path, profile: object) -> bool:
    path = tmp_path / "profile.json"
    # ensure_ascii escapes surrogates and controls, as a hand-written file might.
    path.write_text(json.dumps(profile), encoding="utf-8")
    try:
        profiles.load(path)
    except profiles.ProfileError as error:
        assert len(str(error).splitlines()) == 1
        return False
    return True


def order_accepts(body: dict[str, str]) -> bool:
    try:
        parse_order(json.dumps(body).encode())
    except BadRequest:
        return False
    return True


@pytest.mark.parametrize("name", SAMPLE, ids=ascii)
def test_profile_loader_order_parser_and_valid_name_agree(tmp_path: Path, name: str) -> None:
    expected = valid_name(name)
    assert expected is reference(name)
    assert profile_accepts(tmp_path, {name: {"STRATEGY_A": ["ACC"]}}) is expected
    assert profile_accepts(tmp_path, {"Jada Marsh": {name: ["ACC"]}}) is expected
    assert profile_accepts(tmp_path, {"Jada Marsh": {"STRATEGY_A": [name]}}) is expected
    order = {"STRATEGY": "STRATEGY_A", "INSTRUMENT": "ACC", "POSITION": "BUY"}
    assert order_accepts({**order, "STRATEGY": name}) is expected
    assert order_accepts({**order, "INSTRUMENT": name}) is expected
    assert order_accepts({**order, "ORDER_ID": name}) is expected


def test_a_c1_name_from_a_profile_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text('{"Jada\\u0085Marsh": {"STRATEGY_A": ["ACC"]}}', encoding="utf-8")
    with pytest.raises(profiles.ProfileError, match="control characters"):
        profiles.load(path)
