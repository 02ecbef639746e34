"""User profiles: generated from raw_details.json, read and checked from user_profile.json."""

from __future__ import annotations

import json
import logging
import random
import unicodedata
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger import amounts
from ledger.names import MAX_NAME, name_problem
from ledger.user_answers import Entry, entry

Document = dict[str, dict[str, Entry]]

log = logging.getLogger(__name__)

MAX_STRATEGIES = 7
MAX_INSTRUMENTS = 10


class ProfileError(ValueError):
    """A profile or raw-details file is not usable; the message is one line."""


class _Object(dict[str, Any]):
    """A JSON object that remembers the keys it was given more than once."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.duplicates: list[str] = []
        for key, value in pairs:
            if key in self:
                self.duplicates.append(key)
            else:
                self[key] = value


def _show(value: object) -> str:
    """A short one-line rendering of a value for an error message."""
    if not isinstance(value, str):
        return type(value).__name__
    # repr escapes newlines, control characters and surrogates, so the message stays one line.
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _where(path: Path) -> str:
    """The path as it goes in a message: quoted only when it would not print on one line."""
    text = str(path)
    return text if text.isprintable() else repr(text)


MAX_FILE = 64 * 2**20  # bytes of a profile file (10,000 users x 9 strategies: ~12 MB)


def _read_json(path: Path) -> object:
    """The parsed file, or ProfileError with a one-line reason."""
    where = _where(path)
    try:
        # Only a regular file, read to at most MAX_FILE: a FIFO would hang the start, and
        # /dev/zero would read until memory runs out.
        if path.exists() and not path.is_file():
            msg = f"cannot read {where}: not a regular file"
            raise ProfileError(msg)
        with path.open("rb") as file:
            data = file.read(MAX_FILE + 1)
        if len(data) > MAX_FILE:
            msg = f"cannot read {where}: larger than {MAX_FILE // 2**20} MiB"
            raise ProfileError(msg)
        text = data.decode("utf-8")
    except (OSError, UnicodeError) as error:
        msg = f"cannot read {where}: {type(error).__name__}: {_one_line(error)}"
        raise ProfileError(msg) from None
    try:
        return _loads(text)
    except RecursionError:
        msg = f"cannot read {where}: JSON nested too deeply"
        raise ProfileError(msg) from None
    except ValueError as error:
        msg = f"cannot read {where}: {_one_line(error)}"
        raise ProfileError(msg) from None


def _loads(text: str | bytes) -> Any:
    # Decimals, not floats: a multiplier is kept exactly as written.
    return json.loads(text, object_pairs_hook=_Object, parse_float=Decimal)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _refuse_duplicates(data: Mapping[str, Any], where: str, what: str) -> None:
    # The JSON standard leaves repeated keys undefined; json.loads would keep the last silently.
    duplicates = getattr(data, "duplicates", None)
    if duplicates:
        msg = f"{where}: {what} {_show(duplicates[0])} is given more than once"
        raise ProfileError(msg)


def _look(name: str) -> str:
    """How a name looks: compatibility forms (full width, ligatures), case and invisible
    format characters (zero-width space, joiners, direction marks) aside."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in folded if unicodedata.category(c) != "Cf")


def _warn_alike(names: list[str], where: str, what: str) -> None:
    seen: dict[str, str] = {}
    for name in names:
        # Most names are ASCII: their look is their case alone, without a unicodedata call.
        first = seen.setdefault(name.casefold() if name.isascii() else _look(name), name)
        if first != name:
            log.warning(
                "%s: %s %r and %r look alike (they differ only in case, width or invisible"
                " characters): both kept (names are matched exactly)",
                where,
                what,
                first,
                name,
            )


def _names(data: Mapping[str, Any], key: str, where: str) -> list[str]:
    values = data.get(key)
    if not isinstance(values, list) or not values:
        msg = f"{where}: {key} must be a non-empty list of names"
        raise ProfileError(msg)
    for value in values:
        _check_name(value, f"{where}: {key}")
    # The original file lists one user twice; a profile can only hold a name once.
    return list(dict.fromkeys(values))


def load_raw(path: Path) -> tuple[list[str], list[str], list[str]]:
    """The (users, strategies, instruments) of a raw_details.json file, duplicates dropped."""
    data = _read_json(path)
    where = _where(path)
    if not isinstance(data, dict):
        msg = f"{where}: expected a JSON object with USERS, STRATEGIES, INSTRUMENTS"
        raise ProfileError(msg)
    _refuse_duplicates(data, where, "key")
    return (
        _names(data, "USERS", where),
        _names(data, "STRATEGIES", where),
        _names(data, "INSTRUMENTS", where),
    )


def generate(
    users: list[str], strategies: list[str], instruments: list[str], count: int, rng: random.Random
) -> dict[str, dict[str, list[str]]]:
    """Pick `count` users; each trades 1-7 strategies, each strategy 1-10 instruments, uniformly."""
    # Distinct choices even when a caller passes duplicates (load_raw already drops them).
    users, strategies, instruments = (
        list(dict.fromkeys(users)),
        list(dict.fromkeys(strategies)),
        list(dict.fromkeys(instruments)),
    )
    if not 1 <= count <= len(users):
        msg = f"--users must be between 1 and {len(users)} (the distinct users available)"
        raise ProfileError(msg)
    profiles: dict[str, dict[str, list[str]]] = {}
    for user in rng.sample(users, count):
        chosen = rng.sample(strategies, rng.randint(1, min(MAX_STRATEGIES, len(strategies))))
        profiles[user] = {
            strategy: rng.sample(
                instruments, rng.randint(1, min(MAX_INSTRUMENTS, len(instruments)))
            )
            for strategy in sorted(chosen)
        }
    return profiles


def _check_name(value: object, where: str) -> str:
    if isinstance(value, str):
        problem = name_problem(value)
        if problem is None:
            return value
        msg = f"{where}: name {_show(value)} {problem}"
    else:
        msg = f"{where}: names must be strings of 1-{MAX_NAME} characters, got {_show(value)}"
    raise ProfileError(msg)


def _scaled(value: object, at_strategy: str) -> tuple[object, str]:
    """A book's (instruments, multiplier): the list form, or the object form with a multiplier."""
    if not isinstance(value, dict):
        return value, amounts.ONE
    _refuse_duplicates(value, at_strategy, "key")
    unknown = [key for key in value if key not in ("instruments", "multiplier")]
    if unknown:
        msg = f"{at_strategy}: unexpected key {_show(unknown[0])} (instruments, multiplier)"
        raise ProfileError(msg)
    try:
        multiplier = amounts.decimal(value.get("multiplier", 1))
    except amounts.AmountError as bad:
        msg = f"{at_strategy}: multiplier {bad}"
        raise ProfileError(msg) from None
    return value.get("instruments"), multiplier


def validate(data: object, where: str = "profiles") -> Document:
    """Check the shape {"User": {"STRATEGY": ["INSTR", ...]}} and return it as plain dicts.

    A strategy may be {"instruments": [...], "multiplier": 3}; with multiplier 1 it is a list.
    """
    if not isinstance(data, dict):
        msg = f'{where}: expected {{"User": {{"STRATEGY": ["INSTRUMENT", ...]}}}}'
        raise ProfileError(msg)
    _refuse_duplicates(data, where, "user")
    profiles: Document = {}
    # Names already found good: a document of 10,000 users x 9 strategies x 14 instruments
    # repeats a few instrument names 1.26 M times (checking each: 1.2 s of a 13 MB POST).
    good: set[str] = set()
    for user, strategies in data.items():
        _check_name(user, where)
        at_user = f"{where}: user {user!r}"
        if not isinstance(strategies, dict):
            msg = f"{at_user} must map strategies to instrument lists"
            raise ProfileError(msg)
        _refuse_duplicates(strategies, at_user, "strategy")
        profiles[user] = {}
        for strategy, value in strategies.items():
            _check_name(strategy, at_user)
            at_strategy = f"{where}: {user!r}/{strategy!r}"
            instruments, multiplier = _scaled(value, at_strategy)
            if not isinstance(instruments, list):
                msg = f"{at_strategy} must be a list of instruments"
                raise ProfileError(msg)
            names = [
                i if type(i) is str and i in good else _check_name(i, at_strategy)
                for i in instruments
            ]
            good.update(names)
            kept = list(dict.fromkeys(names))
            if len(kept) != len(names):
                repeated = [name for name, n in Counter(names).items() if n > 1]
                log.warning(
                    "%s: instruments %s listed more than once: the first of each kept",
                    at_strategy,
                    ", ".join(map(repr, repeated)),
                )
            profiles[user][strategy] = entry(kept, multiplier)
        _warn_alike(list(strategies), at_user, "strategies")
    _warn_alike(list(profiles), where, "users")
    return profiles


def parse(raw: bytes, where: str = "body") -> Document:
    """Check a profile document given as JSON bytes; any problem is a one-line ProfileError."""
    try:
        data = _loads(raw)
    except (ValueError, RecursionError) as error:
        msg = f"{where}: not JSON: {_one_line(error)}"
        raise ProfileError(msg) from None
    return validate(data, where)


def load(path: Path) -> Document:
    """Read and check a user_profile.json file; any problem is a one-line ProfileError."""
    return validate(_read_json(path), _where(path))


def write(path: Path, profiles: Mapping[str, Mapping[str, Entry]]) -> None:
    """Write profiles in the original file's shape, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(profiles, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
