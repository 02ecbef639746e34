"""A change decided in slices (ledger.changes.decide with a limit) is the change decided whole."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ledger import profiles
from ledger.answers import OrderRequest
from ledger.application import Ledger
from ledger.domain import Position, Roster
from ledger.user_answers import ChangeAnswer, ChangeOutcome, ChangeRequest, Scope, joined

USERS = st.sampled_from(["ann", "bob", "cy", "dee", "Zoë"])
BOOKS = st.dictionaries(
    st.sampled_from(["STRATEGY_A", "STRATEGY_B", "STRATEGY_C"]),
    st.lists(st.sampled_from(["ACC", "INFY", "NTPC"]), min_size=1, max_size=2)
    | st.builds(
        lambda i, m: {"instruments": i, "multiplier": m},
        st.lists(st.sampled_from(["ACC", "INFY"]), min_size=1, max_size=2),
        st.sampled_from(["2", "0.5"]),
    ),
    max_size=3,
)
DOCUMENTS = st.dictionaries(USERS, BOOKS, max_size=5)


def decided(ledger: Ledger, request: ChangeRequest, limit: int | None) -> list[ChangeAnswer]:
    """Each slice's answer, a slice at a time, as the writer commits them."""
    answers: list[ChangeAnswer] = []
    rest: ChangeRequest | None = request
    while rest is not None:
        (outcome,) = ledger.place_orders([rest], slice_books=limit)
        assert isinstance(outcome, ChangeOutcome)
        answers.append(outcome.answer)
        rest = outcome.rest
    return answers


def document(raw: dict[str, Any]) -> ChangeRequest:
    """Scope.ALL over a document, checked as POST /profiles checks it."""
    return ChangeRequest(Scope.ALL, profiles.validate(raw))


@given(start=DOCUMENTS, target=DOCUMENTS, limit=st.integers(1, 4), dry=st.booleans())
@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_a_document_in_slices_is_the_document_whole(
    database: Any, start: dict[str, Any], target: dict[str, Any], limit: int, dry: bool
) -> None:
    with Ledger(env=database.eventsourcing_env()) as ledger:
        decided(ledger, document(start), None)  # examples share the schema: start afresh
        ledger.place_orders([OrderRequest("STRATEGY_A", "ACC", Position.BUY)])  # kept open
        whole = decided(ledger, replace(document(target), dry_run=True), None)
        assert len(whole) == 1
        parts = decided(ledger, replace(document(target), dry_run=dry), limit)
        # No slice touches more than `limit` books; together they are the change whole.
        assert all(len(p.changes) + p.unchanged <= limit for p in parts)
        together = joined(parts)
        assert [replace(c, sequence=None) for c in together.changes] == whole[0].changes
        assert together.unchanged == whole[0].unchanged
        assert together.dry_run is dry
        if dry:
            assert together.sequence is None
            assert {c.sequence for c in together.changes} <= {None}
        else:
            written = [c.sequence for c in together.changes]
            assert written == sorted(written) and together.sequence == (written or [None])[-1]
            held = document(target).profiles
            assert ledger.profiles() == {user: books for user, books in held.items() if books}
            assert decided(ledger, document(target), limit)[0].changes == []


def test_a_cold_ledger_loads_a_documents_books_together(database: Any, monkeypatch: Any) -> None:
    """After a restart no book is in memory: a document's books are loaded in a few
    statements, not one read each (a cold writer took ~30 s to change 90,000 books)."""
    users = [f"u{n}" for n in range(30)]
    start = {u: {"STRATEGY_A": ["ACC"], "STRATEGY_B": ["INFY"]} for u in users}
    target = {u: {"STRATEGY_A": ["ACC", "NTPC"]} for u in users}  # changes 30, drops 30
    with Ledger(env=database.eventsourcing_env()) as ledger:
        decided(ledger, document(start), None)
    with Ledger(env=database.eventsourcing_env()) as cold:
        assert cold.held == 0
        reads: list[Any] = []
        get = cold.repository.get
        monkeypatch.setattr(cold.repository, "get", lambda *a, **k: reads.append(a) or get(*a, **k))
        parts = decided(cold, document(target), 25)
        assert [r for r in reads if r[0] != Roster.create_id()] == []  # no book read alone
        changes = [c for p in parts for c in p.changes]
        assert sorted(c.change for c in changes) == ["changed"] * 30 + ["dropped"] * 30
        assert cold.profiles() == target
