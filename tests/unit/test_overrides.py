"""What the fenced module takes from eventsourcing's and pgserver's private parts still exists."""

from __future__ import annotations

from ledger.store import overrides


def test_nothing_the_overrides_rely_on_has_moved() -> None:
    assert overrides.missing() == []
