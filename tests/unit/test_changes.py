"""The rules of a change request: scope, partition, the file digest, the wire form."""

from __future__ import annotations

from ledger import changes
from ledger.profile_import import digest
from ledger.user_answers import ChangeRequest, Scope
from ledger.wire import decode_orders, encode_orders, partition

DOCUMENT = {
    "U": {"S1": ["A", "B", "A"], "S2": ["C"]},
    "V": {"S1": ["A"]},
}


def test_the_wanted_books_follow_the_scope_and_drop_repeats() -> None:
    everything = changes.wanted(ChangeRequest(Scope.ALL, DOCUMENT))
    assert everything == {("U", "S1"): ["A", "B"], ("U", "S2"): ["C"], ("V", "S1"): ["A"]}
    user = changes.wanted(ChangeRequest(Scope.USER, DOCUMENT, user="U"))
    assert set(user) == {("U", "S1"), ("U", "S2")}
    book = changes.wanted(ChangeRequest(Scope.BOOK, DOCUMENT, user="U", strategy="S2"))
    assert book == {("U", "S2"): ["C"]}


def test_each_partition_wants_only_its_strategies() -> None:
    parts = [
        changes.wanted(ChangeRequest(Scope.ALL, DOCUMENT, partition=k, partitions=2))
        for k in range(2)
    ]
    assert set(parts[0]) | set(parts[1]) == set(changes.wanted(ChangeRequest(Scope.ALL, DOCUMENT)))
    assert not set(parts[0]) & set(parts[1])
    for k, part in enumerate(parts):
        assert all(partition(strategy, 2) == k for _, strategy in part)


def test_the_digest_is_of_the_content_not_its_layout() -> None:
    reordered = {"V": {"S1": ["A"]}, "U": {"S2": ["C"], "S1": ["A", "B", "A"]}}
    assert digest(DOCUMENT) == digest(reordered)
    assert digest(DOCUMENT) != digest({**DOCUMENT, "V": {"S1": ["B"]}})
    assert len(digest({})) == 64


def test_a_change_travels_the_wire_unchanged() -> None:
    request = ChangeRequest(Scope.BOOK, {"Zoë": {"Стратегия": ["L&T"]}}, "Zoë", "Стратегия", 1, 3)
    dropped = ChangeRequest(Scope.USER, {}, "U", dry_run=True)
    payload = encode_orders([(7, request), (8, dropped)])[5:]  # past the length and the kind
    assert decode_orders(payload) == [(7, request), (8, dropped)]
