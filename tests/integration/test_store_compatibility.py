"""What the ledger's fast events and mapper store, plain eventsourcing reads back unchanged."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import JSONTranscoder, Mapper
from eventsourcing.postgres import PostgresApplicationRecorder
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ledger.answers import OrderRequest
from ledger.application import Ledger
from ledger.domain import Book, Position
from ledger.store.bulk import load_many
from ledger.store.factory import STOCK
from ledger.store.mapper import LedgerMapper
from ledger.user_answers import entry

USERS = ["Holland Proctor", "Kamryn Li", "Zoë Ångström", "李雷"]
STRATEGIES = ["STRATEGY_A", "STRATEGY_B", "Стратегия"]
INSTRUMENTS = ["ACC", "MINDA", "NTPC", 'L&T "q" \\ 😀']

instruments = st.lists(st.sampled_from(INSTRUMENTS), min_size=1, max_size=4)
profiles = st.dictionaries(
    st.sampled_from(USERS),
    st.dictionaries(
        st.sampled_from(STRATEGIES),
        instruments
        | st.builds(
            entry, instruments, st.sampled_from(["1", "3", "0.5", "123456789012.12345678"])
        ),
        max_size=3,
    ),
    max_size=4,
)
orders = st.lists(
    st.builds(
        OrderRequest,
        st.sampled_from([*STRATEGIES, "STRATEGY_X"]),
        st.sampled_from(INSTRUMENTS),
        st.sampled_from(list(Position)),
        st.none() | st.sampled_from(["sig-1", "sig-2", "sig-é"]),
        quantity=st.integers(1, 2) | st.just(10**9),
        price=st.none() | st.sampled_from([Decimal("0.1"), Decimal("101.25"), Decimal(7)]),
        quantity_given=st.booleans(),
    ),
    min_size=1,
    max_size=12,
)
steps = st.lists(
    st.tuples(st.just("profiles"), profiles) | st.tuples(st.just("orders"), orders),
    min_size=1,
    max_size=5,
)


class PlainLedger(Application[UUID]):
    """Stock eventsourcing on the ledger's tables: default mapper, JSONTranscoder, recorder."""

    name = "Ledger"  # the same tables


def plain_env(database: Any) -> dict[str, str]:
    env: dict[str, str] = database.eventsourcing_env()
    env["PERSISTENCE_MODULE"] = STOCK
    return env


def state(book: Book) -> tuple[Any, ...]:
    """Everything a book holds."""
    return (book.user, book.strategy, book.instruments, book.active, book.open, book.version,
            book.sizes, book.multiplier)  # fmt: skip


@given(steps=steps)
@hsettings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_plain_eventsourcing_reads_what_the_ledger_writes(
    database: Any, steps: list[tuple[str, Any]]
) -> None:
    # Examples share the test's schema, so each one continues from the previous state.
    with (
        Ledger(env=database.eventsourcing_env()) as ledger,
        PlainLedger(env=plain_env(database)) as plain,
    ):
        assert type(ledger.mapper) is LedgerMapper
        assert type(plain.mapper) is Mapper
        assert type(plain.mapper.transcoder) is JSONTranscoder
        assert type(plain.recorder) is PostgresApplicationRecorder
        for kind, step in steps:
            if kind == "profiles":
                ledger.import_profiles(step)
            else:
                ledger.place_orders(step)

        held = {book.id: state(book) for book in ledger.books()}
        for book_id, book in held.items():
            rebuilt: Any = plain.repository.get(book_id)
            assert isinstance(rebuilt, Book)
            assert state(rebuilt) == book
        # A new writer loads many books at once (ledger/store/bulk.py): the same books.
        with Ledger(env=database.eventsourcing_env()) as fresh:
            assert {book.id: state(book) for book in fresh.books()} == held

        top = plain.recorder.max_notification_id() or 0
        stored = plain.recorder.select_notifications(start=1, limit=top + 1)
        assert [n.id for n in stored[-1:]] == ([top] if top else [])  # ids may have gaps
        for notification in stored:
            domain_event = plain.mapper.to_domain_event(notification)
            assert ledger.mapper.to_domain_event(notification) == domain_event
            assert plain.mapper.to_stored_event(domain_event).state == notification.state
            assert ledger.mapper.to_stored_event(domain_event).state == notification.state


def test_books_loaded_together_equal_books_loaded_one_by_one(database: Any) -> None:
    with Ledger(env=database.eventsourcing_env()) as ledger:
        ledger.import_profiles({u: {"STRATEGY_A": ["ACC", "MINDA"]} for u in USERS})
        # 230 orders, each booked for every user: every book passes two snapshots (one every
        # 100 events) and has events after the last.
        sides = [Position.BUY, Position.SELL]
        ledger.place_orders([OrderRequest("STRATEGY_A", "ACC", sides[n % 2]) for n in range(229)])
        ledger.place_orders([OrderRequest("STRATEGY_A", "MINDA", Position.BUY)])
        held = {book.id: state(book) for book in ledger.books()}
    assert len(held) == len(USERS)
    with Ledger(env=database.eventsourcing_env()) as fresh:
        assert fresh.snapshots is not None
        snapshotted = {s.originator_id for b in held for s in fresh.snapshots.get(b)}
        assert snapshotted == set(held)
        one_by_one = {b: state(fresh.repository.get(b)) for b in held}
        assert one_by_one == held
        assert {b: state(book) for b, book in load_many(fresh, list(held)).items()} == held
        with pytest.raises(AggregateNotFoundError):
            load_many(fresh, [*held, uuid4()])
