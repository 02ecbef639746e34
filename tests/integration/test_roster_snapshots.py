"""The roster's snapshots: a process starting on a big roster reads its last one."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from ledger.application import Ledger
from ledger.domain import Roster
from ledger.http.app import create_app
from ledger.settings import Settings
from ledger.user_answers import ChangeRequest, Scope

TAKEN_AT = frozenset({3, 5, 8})


def one_user(name: str) -> ChangeRequest:
    """A change adding one user's book: one roster event each."""
    profile = {name: {"STRATEGY_A": ["ACC"]}}
    return ChangeRequest(Scope.BOOK, profile, name, "STRATEGY_A")  # type: ignore[arg-type]


def folded(ledger: Ledger) -> Roster:
    """The roster from all its events, no snapshot."""
    roster: Any = None
    for domain_event in ledger.events.get(Roster.create_id()):
        roster = domain_event.mutate(roster)
    assert isinstance(roster, Roster)
    return roster


def test_a_started_process_reads_the_roster_from_its_snapshot(
    make_ledger: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ledger.snapshots.ROSTER_SNAPSHOTS", TAKEN_AT)
    writer: Ledger = make_ledger()
    writer.import_profiles({"Ann": {"STRATEGY_B": ["ACC"]}})  # versions 1 and 2
    for n in range(7):  # a writer batch each
        writer.place_orders([one_user(f"user {n}")])
    assert writer.snapshots is not None
    taken = [s.originator_version for s in writer.snapshots.get(Roster.create_id())]
    assert taken == sorted(TAKEN_AT)
    started: Ledger = make_ledger()
    roster, events = started.roster(), folded(started)
    assert roster is not None and roster.version == events.version == 9
    assert roster.books == events.books and len(roster.books) == 8
    assert roster.file_digest == events.file_digest
    assert started.book_keys() == writer.book_keys()
    # The last snapshot holds the books of its version, none added after it (that it is a
    # copy, whatever the next batch does, is tests/unit/test_snapshots.py's).
    (last,) = writer.snapshots.get(Roster.create_id(), gt=7)
    assert len(last.state["books"]) == 7  # Ann, and user 0 to user 5


def test_a_roster_read_whole_at_a_start_is_snapshotted_once(
    make_ledger: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ledger.snapshots.ROSTER_SNAPSHOTS", frozenset())  # a store from before
    writer: Ledger = make_ledger()
    writer.import_profiles({"Ann": {"STRATEGY_B": ["ACC"]}})  # versions 1 and 2
    for n in range(7):
        writer.place_orders([one_user(f"user {n}")])
    assert writer.snapshots is not None
    assert list(writer.snapshots.get(Roster.create_id())) == []
    assert make_ledger().catch_up_roster_snapshot() is None  # 9 events: below ROSTER_FIRST
    monkeypatch.setattr("ledger.snapshots.ROSTER_FIRST", 5)
    started: Ledger = make_ledger()
    assert started.catch_up_roster_snapshot() == 9
    (taken,) = writer.snapshots.get(Roster.create_id())
    assert taken.originator_version == 9 and len(taken.state["books"]) == 8
    again: Ledger = make_ledger()
    assert again.catch_up_roster_snapshot() is None  # nothing replayed past the snapshot
    roster = again.roster()
    assert roster is not None and roster.books == folded(again).books


def test_a_starting_writer_catches_the_roster_snapshot_up(
    make_ledger: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ledger.snapshots.ROSTER_SNAPSHOTS", frozenset())
    writer: Ledger = make_ledger()
    writer.import_profiles({"Ann": {"STRATEGY_B": ["ACC"]}})
    for n in range(7):
        writer.place_orders([one_user(f"user {n}")])
    monkeypatch.setattr("ledger.snapshots.ROSTER_FIRST", 5)
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
    assert writer.snapshots is not None
    assert [s.originator_version for s in writer.snapshots.get(Roster.create_id())] == [9]
