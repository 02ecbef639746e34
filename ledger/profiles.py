"""User profiles: generated from raw_details.json, read and checked from user_profile.json."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MAX_STRATEGIES = 7
MAX_INSTRUMENTS = 10
MAX_NAME = 64


class ProfileError(ValueError):
    """A profile or raw-details file is not usable."""


def _names(data: Mapping[str, Any], key: str, path: Path) -> list[str]:
    values = data.get(key)
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        msg = f"{path}: {key} must be a non-empty list of strings"
        raise ProfileError(msg)
    # The original file lists one user twice; a profile can only hold a name once.
    return list(dict.fromkeys(values))


def load_raw(path: Path) -> tuple[list[str], list[str], list[str]]:
    """The (users, strategies, instruments) of a raw_details.json file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        msg = f"cannot read {path}: {error}"
        raise ProfileError(msg) from None
    if not isinstance(data, dict):
        msg = f"{path}: expected a JSON object with USERS, STRATEGIES, INSTRUMENTS"
        raise ProfileError(msg)
    return (
        _names(data, "USERS", path),
        _names(data, "STRATEGIES", path),
        _names(data, "INSTRUMENTS", path),
    )


def generate(
    users: list[str], strategies: list[str], instruments: list[str], count: int, rng: random.Random
) -> dict[str, dict[str, list[str]]]:
    """Pick `count` users; each trades 1-7 strategies, each strategy 1-10 instruments, uniformly."""
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
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME:
        msg = f"{where}: names must be strings of 1-{MAX_NAME} characters, got {value!r}"
        raise ProfileError(msg)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        msg = f"{where}: {value!r} contains control characters"
        raise ProfileError(msg)
    return value


def validate(data: object, where: str = "profiles") -> dict[str, dict[str, list[str]]]:
    """Check the shape {"User": {"STRATEGY": ["INSTR", ...]}} and return it as plain dicts."""
    if not isinstance(data, dict):
        msg = f'{where}: expected {{"User": {{"STRATEGY": ["INSTRUMENT", ...]}}}}'
        raise ProfileError(msg)
    profiles: dict[str, dict[str, list[str]]] = {}
    for user, strategies in data.items():
        _check_name(user, where)
        if not isinstance(strategies, dict):
            msg = f"{where}: {user!r} must map strategies to instrument lists"
            raise ProfileError(msg)
        profiles[user] = {}
        for strategy, instruments in strategies.items():
            _check_name(strategy, f"{where}: {user}")
            if not isinstance(instruments, list):
                msg = f"{where}: {user}/{strategy} must be a list of instruments"
                raise ProfileError(msg)
            names = [_check_name(i, f"{where}: {user}/{strategy}") for i in instruments]
            profiles[user][strategy] = list(dict.fromkeys(names))
    return profiles


def load(path: Path) -> dict[str, dict[str, list[str]]]:
    """Read and check a user_profile.json file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        msg = f"cannot read {path}: {error}"
        raise ProfileError(msg) from None
    return validate(data, str(path))


def write(path: Path, profiles: Mapping[str, Mapping[str, list[str]]]) -> None:
    """Write profiles in the original file's shape, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(profiles, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
