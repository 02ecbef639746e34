"""Profile files: the shape round-trips, every refusal is one line, oddities are warned about."""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

import pytest

from ledger import profiles
from ledger.profiles import ProfileError

ROOT = Path(__file__).resolve().parents[2]
RAW = ROOT / "jsons" / "raw_details.json"
DEEP = 10**5

VALID = {
    "Jada Marsh": {"STRATEGY_A": ["ACC", "INFY"], "STRATEGY_B": ["L&T"]},
    "Kamryn Li": {"STRATEGY_A": ["NTPC"]},
}


def write_text(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "user_profile.json"
    path.write_text(text, encoding="utf-8")
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ProfileError) as caught:
        profiles.load(path)
    message = str(caught.value)
    assert message.splitlines() == [message], message
    assert len(message) < 300
    return message


def test_valid_shape_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "user_profile.json"
    profiles.write(path, VALID)
    loaded = profiles.load(path)
    assert loaded == VALID
    assert list(loaded) == list(VALID)
    # Plain containers, not the parser's duplicate-tracking objects.
    assert type(loaded) is dict
    assert all(type(strategies) is dict for strategies in loaded.values())
    assert json.loads(path.read_text(encoding="utf-8")) == VALID


def test_non_ascii_names_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "user_profile.json"
    data = {"Zoë \N{GRINNING FACE}": {"STRATÉGIE": ["\xa0nbsp", "x" * 64]}}
    profiles.write(path, data)
    assert profiles.load(path) == data


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[]", "expected"),
        ('"Jada Marsh"', "expected"),
        ('{"Jada Marsh": ["STRATEGY_A"]}', "must map strategies"),
        ('{"Jada Marsh": {"STRATEGY_A": "ACC"}}', "must be a list of instruments"),
        ('{"Jada Marsh": {"STRATEGY_A": [1]}}', "names must be strings"),
        ('{"Jada Marsh": {"STRATEGY_A": [null]}}', "names must be strings"),
        ('{"Jada Marsh": {"STRATEGY_A": [["ACC"]]}}', "names must be strings"),
        ('{"": {"STRATEGY_A": ["ACC"]}}', "must be 1-64 characters"),
        (json.dumps({"x" * 65: {"STRATEGY_A": ["ACC"]}}), "must be 1-64 characters"),
        (json.dumps({"Jada Marsh": {"S" * 65: ["ACC"]}}), "must be 1-64 characters"),
        (json.dumps({"Jada Marsh": {"S": ["I" * 65]}}), "must be 1-64 characters"),
        ('{"Jada\\u0000Marsh": {"STRATEGY_A": ["ACC"]}}', "control characters"),
        ('{"Jada\\nMarsh": {"STRATEGY_A": ["ACC"]}}', "control characters"),
        ('{"Jada Marsh": {"STRATEGY_A\\u001f": ["ACC"]}}', "control characters"),
        ('{"Jada Marsh": {"STRATEGY_A": ["ACC\\u007f"]}}', "control characters"),
        ('{"Jada\\u0080Marsh": {"STRATEGY_A": ["ACC"]}}', "control characters"),
        ('{"Jada\\u0085Marsh": {"STRATEGY_A": ["ACC"]}}', "control characters"),
        ('{"Jada Marsh": {"STRATEGY_A": ["ACC\\u009f"]}}', "control characters"),
        ('{"\\ud800": {"STRATEGY_A": ["ACC"]}}', "lone surrogates"),
        ('{"Jada Marsh": {"STRATEGY_A": ["\\udfff"]}}', "lone surrogates"),
        ("[" * DEEP + "]" * DEEP, "nested too deeply"),
        ('{"a":' * DEEP + "1" + "}" * DEEP, "nested too deeply"),
        ('{"Jada Marsh": {"STRATEGY_A": ' + "[" * DEEP + "]" * DEEP + "}}", "nested too deeply"),
        ("", "cannot read"),
        ('{"Jada Marsh": ', "cannot read"),
        ("1" * 5000, "cannot read"),
    ],
    ids=lambda value: ascii(value)[:40],
)
def test_refusals_are_one_line(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in refusal(write_text(tmp_path, text))


def test_duplicate_user_key_is_refused_by_name(tmp_path: Path) -> None:
    text = '{"Hattie Dyer": {"STRATEGY_A": ["ACC"]}, "Hattie Dyer": {"STRATEGY_B": ["INFY"]}}'
    message = refusal(write_text(tmp_path, text))
    assert "'Hattie Dyer'" in message
    assert "more than once" in message


def test_duplicate_strategy_key_is_refused_by_name(tmp_path: Path) -> None:
    text = '{"Jada Marsh": {"STRATEGY_A": ["ACC"], "STRATEGY_A": ["INFY"]}}'
    message = refusal(write_text(tmp_path, text))
    assert "'Jada Marsh'" in message
    assert "'STRATEGY_A'" in message


def test_unreadable_files_are_one_line(tmp_path: Path) -> None:
    assert "cannot read" in refusal(tmp_path / "missing.json")
    path = tmp_path / "bad.json"
    path.write_bytes(b'{"Jada \xed\xa0\x80": {}}')  # a UTF-8-encoded surrogate is not UTF-8
    assert "cannot read" in refusal(path)


def test_only_a_regular_file_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # reading it would wait for a writer for ever
    assert "not a regular file" in refusal(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")  # reading it would fill the memory
    assert "not a regular file" in refusal(zero)
    assert "not a regular file" in refusal(tmp_path)


def test_names_in_messages_are_escaped(tmp_path: Path) -> None:
    message = refusal(write_text(tmp_path, '{"a\\u2028b\\u0085": {"S": ["I"]}}'))
    assert "\u2028" not in message
    assert "\\x85" in message


def test_case_variants_are_kept_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = json.dumps(
        {
            "Jada Marsh": {"STRATEGY_A": ["ACC"], "strategy_a": ["INFY"]},
            "jada marsh": {"STRATEGY_A": ["NTPC"]},
        }
    )
    with caplog.at_level(logging.WARNING, logger="ledger.profiles"):
        loaded = profiles.load(write_text(tmp_path, text))
    assert list(loaded) == ["Jada Marsh", "jada marsh"]
    assert list(loaded["Jada Marsh"]) == ["STRATEGY_A", "strategy_a"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'Jada Marsh' and 'jada marsh'" in w for w in warnings), warnings
    assert any("'STRATEGY_A' and 'strategy_a'" in w for w in warnings), warnings
    assert all(r.name == "ledger.profiles" for r in caplog.records)


@pytest.mark.parametrize(
    ("first", "twin"),
    [
        ("Jada Marsh", "Jada Mar\u200bsh"),  # a zero-width space
        ("Jada Marsh", "Ｊａｄａ Ｍａｒｓｈ"),  # full-width letters
        ("Zoë", "zo\u00eb\u200d"),  # case and a zero-width joiner
    ],
)
def test_names_that_look_alike_are_kept_with_a_warning(
    first: str, twin: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = json.dumps({first: {"STRATEGY_A": ["ACC"]}, twin: {"STRATEGY_A": ["INFY"]}})
    with caplog.at_level(logging.WARNING, logger="ledger.profiles"):
        loaded = profiles.load(write_text(tmp_path, text))
    assert list(loaded) == [first, twin]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{first!r} and {twin!r} look alike" in warning


def test_duplicate_instruments_keep_the_first_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = json.dumps({"Jada Marsh": {"STRATEGY_A": ["INFY", "ACC", "INFY", "NTPC", "ACC"]}})
    with caplog.at_level(logging.WARNING, logger="ledger.profiles"):
        loaded = profiles.load(write_text(tmp_path, text))
    assert loaded == {"Jada Marsh": {"STRATEGY_A": ["INFY", "ACC", "NTPC"]}}
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "'INFY', 'ACC'" in warning
    assert "'Jada Marsh'/'STRATEGY_A'" in warning


def test_a_clean_file_logs_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "user_profile.json"
    profiles.write(path, VALID)
    with caplog.at_level(logging.WARNING, logger="ledger.profiles"):
        profiles.load(path)
    assert not caplog.records


def test_load_raw_drops_the_user_listed_twice() -> None:
    listed = json.loads(RAW.read_text(encoding="utf-8"))["USERS"]
    users, strategies, instruments = profiles.load_raw(RAW)
    assert listed.count("Hattie Dyer") == 2
    assert users.count("Hattie Dyer") == 1
    assert users == list(dict.fromkeys(listed))
    assert len(users) == len(set(users)) == 20
    assert len(strategies) == len(set(strategies)) == 9
    assert len(instruments) == len(set(instruments)) == 14


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[]", "expected a JSON object"),
        ('{"USERS": ["A"], "STRATEGIES": ["S"]}', "INSTRUMENTS must be a non-empty list"),
        ('{"USERS": [], "STRATEGIES": ["S"], "INSTRUMENTS": ["I"]}', "USERS must be"),
        ('{"USERS": ["A\\u0085"], "STRATEGIES": ["S"], "INSTRUMENTS": ["I"]}', "control"),
        ('{"USERS": ["A"], "USERS": ["B"], "STRATEGIES": ["S"], "INSTRUMENTS": ["I"]}', "'USERS'"),
        ("[" * DEEP + "]" * DEEP, "nested too deeply"),
    ],
)
def test_load_raw_refusals_are_one_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ProfileError) as caught:
        profiles.load_raw(write_text(tmp_path, text))
    message = str(caught.value)
    assert message.splitlines() == [message]
    assert expected in message


@pytest.mark.parametrize("seed", range(25))
def test_generate_picks_distinct_names_within_the_limits(seed: int) -> None:
    users, strategies, instruments = profiles.load_raw(RAW)
    generated = profiles.generate(users, strategies, instruments, 12, random.Random(seed))
    assert len(generated) == 12
    assert set(generated) <= set(users)
    for chosen in generated.values():
        assert 1 <= len(chosen) <= profiles.MAX_STRATEGIES
        assert set(chosen) <= set(strategies)
        for picked in chosen.values():
            assert 1 <= len(picked) <= profiles.MAX_INSTRUMENTS
            assert len(picked) == len(set(picked))
            assert set(picked) <= set(instruments)
    assert profiles.validate(generated) == generated


def test_generate_covers_the_whole_range() -> None:
    users, strategies, instruments = profiles.load_raw(RAW)
    rng = random.Random(1)
    strategy_counts: set[int] = set()
    instrument_counts: set[int] = set()
    for _ in range(30):
        for chosen in profiles.generate(users, strategies, instruments, 20, rng).values():
            strategy_counts.add(len(chosen))
            instrument_counts.update(len(picked) for picked in chosen.values())
    assert strategy_counts == set(range(1, 8))
    assert instrument_counts == set(range(1, 11))


def test_generate_is_deterministic_for_a_seed() -> None:
    users, strategies, instruments = profiles.load_raw(RAW)
    first = profiles.generate(users, strategies, instruments, 5, random.Random(42))
    again = profiles.generate(users, strategies, instruments, 5, random.Random(42))
    other = profiles.generate(users, strategies, instruments, 5, random.Random(43))
    assert first == again
    assert json.dumps(first) == json.dumps(again)  # same order too
    assert first != other


def test_generate_ignores_duplicates_and_bounds_the_count() -> None:
    generated = profiles.generate(["A", "A", "B"], ["S"], ["I", "I"], 2, random.Random(0))
    assert sorted(generated) == ["A", "B"]
    assert all(chosen == {"S": ["I"]} for chosen in generated.values())
    for count in (0, 3):
        with pytest.raises(ProfileError, match="between 1 and 2"):
            profiles.generate(["A", "A", "B"], ["S"], ["I"], count, random.Random(0))


def test_a_multiplier_is_the_object_form_exactly(tmp_path: Path) -> None:
    text = (
        '{"U": {"A": {"instruments": ["ACC", "ACC"], "multiplier": 0.1},'
        ' "B": {"instruments": ["INFY"], "multiplier": "2.50"},'
        ' "C": {"instruments": ["NTPC"], "multiplier": 1},'
        ' "D": {"instruments": ["L&T"]}, "E": ["ACC"]}}'
    )
    assert profiles.load(write_text(tmp_path, text)) == {
        "U": {
            "A": {"instruments": ["ACC"], "multiplier": "0.1"},
            "B": {"instruments": ["INFY"], "multiplier": "2.5"},
            "C": ["NTPC"],  # multiplier 1 is the list form
            "D": ["L&T"],
            "E": ["ACC"],
        }
    }
    assert profiles.parse(text.encode()) == profiles.load(write_text(tmp_path, text))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"instruments": ["ACC"], "multiplier": 0}', "multiplier must be greater than 0"),
        ('{"instruments": ["ACC"], "multiplier": -2}', "multiplier must be greater than 0"),
        ('{"instruments": ["ACC"], "multiplier": "x"}', "multiplier must be a decimal"),
        ('{"instruments": ["ACC"], "multiplier": true}', "multiplier must be a decimal"),
        ('{"instruments": ["ACC"], "multiplier": 0.000000001}', "8 digits after"),
        ('{"instruments": ["ACC"], "multiplier": 1e13}', "12 digits before"),
        ('{"instruments": ["ACC"], "weight": 2}', "unexpected key 'weight'"),
        ('{"multiplier": 2}', "must be a list of instruments"),
        ('{"instruments": ["ACC"], "multiplier": 2, "multiplier": 3}', "given more than once"),
    ],
)
def test_a_bad_multiplier_is_one_line_naming_the_book(
    tmp_path: Path, value: str, expected: str
) -> None:
    with pytest.raises(ProfileError) as refused:
        profiles.load(write_text(tmp_path, '{"U": {"A": ' + value + "}}"))
    message = str(refused.value)
    assert "'U'/'A'" in message
    assert expected in message
    assert "\n" not in message
