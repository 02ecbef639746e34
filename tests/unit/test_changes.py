"""The rules of a change request: scope, partition, the file digest, the wire form."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ledger import changes
from ledger.answers import OrderRequest
from ledger.domain import Position
from ledger.profile_import import digest
from ledger.user_answers import ChangeRequest, Entry, Scaled, Scope
from ledger.wire import decode_orders, encode_orders, partition

DOCUMENT: dict[str, dict[str, Entry]] = {
    "U": {"S1": ["A", "B", "A"], "S2": ["C"]},
    "V": {"S1": ["A"]},
}


def test_the_wanted_books_follow_the_scope_and_drop_repeats() -> None:
    everything = changes.wanted(ChangeRequest(Scope.ALL, DOCUMENT))
    assert everything == {
        ("U", "S1"): (["A", "B"], "1"),
        ("U", "S2"): (["C"], "1"),
        ("V", "S1"): (["A"], "1"),
    }
    user = changes.wanted(ChangeRequest(Scope.USER, DOCUMENT, user="U"))
    assert set(user) == {("U", "S1"), ("U", "S2")}
    book = changes.wanted(ChangeRequest(Scope.BOOK, DOCUMENT, user="U", strategy="S2"))
    assert book == {("U", "S2"): (["C"], "1")}


def test_a_scaled_book_is_wanted_with_its_multiplier() -> None:
    scaled = {"U": {"S1": Scaled(instruments=["A", "A"], multiplier="2.5")}}
    assert changes.wanted(ChangeRequest(Scope.ALL, scaled)) == {("U", "S1"): (["A"], "2.5")}


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
    scaled = ChangeRequest(Scope.ALL, {"U": {"S": Scaled(instruments=["A"], multiplier="0.5")}})
    sent = [(7, request), (8, dropped), (9, scaled)]
    payload = encode_orders(sent)[5:]  # past length, kind
    assert decode_orders(payload) == sent


def test_an_order_travels_the_wire_with_its_quantity_and_exact_price() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    sized = OrderRequest("S", "ACC", Position.SELL, "o1", at, 7, Decimal("0.1"), True)
    plain = OrderRequest("S", "ACC", Position.BUY, None, at)
    payload = encode_orders([(1, sized), (2, plain)])[5:]
    assert decode_orders(payload) == [(1, sized), (2, plain)]
    assert str(decode_orders(payload)[0][1].price) == "0.1"
