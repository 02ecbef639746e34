"""A model of the roster and the order rules: answers replayed in sequence order must agree."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, str]


@dataclass
class Model:
    """Each (user, strategy): its instruments, whether it is traded, and its open positions."""

    books: dict[Key, list[str]] = field(default_factory=dict)
    active: dict[Key, bool] = field(default_factory=dict)
    open: dict[Key, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, profiles: dict[str, dict[str, list[str]]]) -> Model:
        model = cls()
        for user, strategies in profiles.items():
            for strategy, instruments in strategies.items():
                model.set((user, strategy), instruments)
        return model

    def set(self, key: Key, instruments: list[str]) -> None:
        self.books[key] = list(instruments)
        self.active[key] = True
        self.open.setdefault(key, set())

    def drop(self, key: Key) -> None:
        self.active[key] = False

    def decide(self, strategy: str, instrument: str, position: str) -> dict[str, Any]:
        """What the ledger must answer (as sets) for an order, and the change it makes."""
        accepted: set[str] = set()
        rejected: dict[str, str] = {}
        concerned = [k for k in self.books if k[1] == strategy and (self.active[k] or self.open[k])]
        for key in concerned:
            listed = self.active[key] and instrument in self.books[key]
            held = instrument in self.open[key]
            if position == "BUY":
                reason = (
                    "INSTRUMENT_NOT_IN_STRATEGY" if not listed else "ALREADY_OPEN" if held else None
                )
            else:
                reason = (
                    None
                    if held
                    else "NO_OPEN_POSITION"
                    if listed
                    else ("INSTRUMENT_NOT_IN_STRATEGY")
                )
            if reason is None:
                accepted.add(key[0])
                (self.open[key].add if position == "BUY" else self.open[key].discard)(instrument)
            else:
                rejected[key[0]] = reason
        return {
            "accepted": accepted,
            "rejected": rejected,
            "reason": None if concerned else "UNKNOWN_STRATEGY",
        }


def check(profiles: dict[str, dict[str, list[str]]], answers: list[dict[str, Any]]) -> int:
    """Replay order and change answers in sequence order against the model; how many checked.

    An order answer has `order_id`; a change answer has `change` (and `sequence` null when it
    wrote nothing, which the model skips: the state was already so).
    """
    model = Model.of(profiles)
    written = sorted((a for a in answers if a.get("sequence") is not None), key=_sequence)
    sequences = [a["sequence"] for a in written]
    assert len(set(sequences)) == len(sequences), "two answers share a sequence"
    for answer in written:
        if "order_id" not in answer:
            key = (answer["user"], answer["strategy"])
            if answer["change"] == "dropped":
                model.drop(key)
            else:
                model.set(key, answer["instruments"])
            continue
        expected = model.decide(answer["strategy"], answer["instrument"], answer["position"])
        got = {
            "accepted": set(answer["accepted_for"]),
            "rejected": {r["user"]: r["reason"] for r in answer["rejected_for"]},
            "reason": answer["reason"],
        }
        assert got == expected, (answer, expected)
    return len(written)


def _sequence(answer: dict[str, Any]) -> int:
    sequence: int = answer["sequence"]
    return sequence
