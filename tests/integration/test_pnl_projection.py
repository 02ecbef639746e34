"""Quantities, prices and P&L through the real projection on PostgreSQL, against a model."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import psycopg
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from psycopg import sql

from ledger.answers import OrderAnswer, OrderRequest
from ledger.application import Ledger
from ledger.domain import Position
from ledger.store.database import Database
from projections import pnl, queries
from projections.replay import replay
from projections.runner import open_view
from projections.views import LedgerView
from tests.integration.test_projections import fresh_store, runner, snapshot
from tests.unit.test_fold import MULTIPLIERS, PRICES, fraction

USERS = ("Ann", "Bo", "Cy")
STRATEGIES = ("S_A", "S_B")
INSTRUMENTS = ("I1", "I2")
Key = tuple[str, str, str]

PROFILES = st.fixed_dictionaries(
    {
        user: st.dictionaries(
            st.sampled_from(STRATEGIES),
            st.tuples(st.frozensets(st.sampled_from(INSTRUMENTS), min_size=1), MULTIPLIERS),
            max_size=2,
        )
        for user in USERS
    }
)
ORDERS = st.lists(
    st.tuples(
        st.sampled_from(STRATEGIES),
        st.sampled_from(INSTRUMENTS),
        st.sampled_from(["BUY", "SELL"]),
        st.none() | st.sampled_from([1, 3]) | st.integers(1, 10**9),  # None: QUANTITY not given
        PRICES,
    ),
    max_size=30,
)


def profile(drawn: dict[str, dict[str, tuple[frozenset[str], str]]]) -> dict[str, Any]:
    """The profile document: a strategy with a multiplier other than 1 in the object form."""
    return {
        user: {
            strategy: sorted(instruments)
            if multiplier == "1"
            else {"instruments": sorted(instruments), "multiplier": multiplier}
            for strategy, (instruments, multiplier) in books.items()
        }
        for user, books in drawn.items()
    }


def model(
    answers: list[OrderAnswer], multipliers: dict[tuple[str, str], str], as_of: int | None = None
) -> tuple[dict[Key, tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Open positions and trades with their numbers, as Fractions, from the POST answers (those
    up to sequence `as_of` when given)."""
    open_: dict[Key, tuple[Any, ...]] = {}
    trades: list[tuple[Any, ...]] = []
    for answer in sorted(answers, key=lambda a: a.sequence or 0):
        if as_of is not None and (answer.sequence or 0) > as_of:
            break
        for user in answer.accepted_for:
            key = (user, answer.strategy, answer.instrument)
            if answer.position is Position.BUY:
                booked = answer.quantity * Fraction(multipliers[user, answer.strategy])
                open_[key] = (answer.order_id, booked, fraction(answer.price))
                continue
            buy, booked, entry = open_.pop(key)
            exit_ = fraction(answer.price)
            gain = None if entry is None or exit_ is None else (exit_ - entry) * booked
            trades.append((*key, buy, answer.order_id, booked, entry, exit_, gain))
    return open_, trades


FILTERS = (
    queries.Filters(),
    queries.Filters(user="Ann"),
    queries.Filters(strategy="S_B"),
    queries.Filters(user="Bo", instrument="I1"),
)


def held(
    view: LedgerView,
    as_of: int | None = None,
    limit: int = 1000,
    filters: queries.Filters = FILTERS[0],
) -> dict[Key, Any]:
    """Open positions read from the read tables through the answers, page by page."""
    open_: dict[Key, Any] = {}
    after = None
    while True:
        page = queries.positions(view, filters, limit, after, as_of=as_of)
        for p in page.positions:
            key = (p.user, p.strategy, p.instrument)
            assert key not in open_ and (after is None or key > after)  # in key order, once
            open_[key] = (p.order_id, Fraction(p.quantity), fraction(p.entry_price))
            after = key
        if page.next is None:
            return open_


def from_view(view: LedgerView) -> tuple[dict[Key, tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The same, read from the read tables through the answers."""
    open_ = held(view)
    trades = [
        (t.user, t.strategy, t.instrument, t.buy_order_id, t.sell_order_id, Fraction(t.quantity),
         fraction(t.entry_price), fraction(t.exit_price), fraction(t.realised_pnl))
        for t in queries.trades(view, queries.Filters(), 1000, None).trades
    ]  # fmt: skip
    return open_, trades


def model_pnl(trades: list[tuple[Any, ...]], by: int) -> dict[str, tuple[Fraction, int, int]]:
    """Per user (by=0) or strategy (by=1): the sum of known P&L, trades, and unpriced trades."""
    lines: dict[str, tuple[Fraction, int, int]] = {}
    for trade in trades:
        total, count, unpriced = lines.get(trade[by], (Fraction(0), 0, 0))
        gain = trade[-1]
        lines[trade[by]] = (total + (gain or 0), count + 1, unpriced + (gain is None))
    return lines


@given(drawn=PROFILES, orders=ORDERS, batch=st.integers(1, 5))
@hsettings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_read_tables_and_pnl_agree_with_the_model(
    database_url: str, drawn: Any, orders: list[Any], batch: int
) -> None:
    multipliers = {(u, s): m for u, books in drawn.items() for s, (_, m) in books.items()}
    requests = [
        OrderRequest(
            s, i, Position(p), quantity=q or 1, quantity_given=q is not None,
            price=None if price is None else Decimal(price),
        )
        for s, i, p, q, price in orders
    ]  # fmt: skip
    answers: list[OrderAnswer] = []
    with fresh_store(database_url) as database, Ledger(env=database.eventsourcing_env()) as ledger:
        env = database.eventsourcing_env()
        ledger.import_profiles(profile(drawn))
        with runner(env, batching=True) as run:
            for start in range(0, len(requests), batch):
                outcomes = ledger.place_orders(requests[start : start + batch])
                answers.extend(o.answer for o in outcomes if isinstance(o.answer, OrderAnswer))
            if top := ledger.last_sequence():  # an empty profile and no orders: nothing
                run.wait(top, timeout=30)
        view = open_view(env)
        open_, trades = model(answers, multipliers)
        assert from_view(view) == (open_, trades)
        everything = queries.Filters()
        now = pnl.pnl(view, everything)
        for lines, name, by in ((now.by_user, "user", 0), (now.by_strategy, "strategy", 1)):
            shown = {
                getattr(line, name): (Fraction(line.realised_pnl), line.trades, line.unpriced)
                for line in lines
            }
            assert shown == model_pnl(trades, by)
        # As of every sequence an order was given (and the one before it), in pages of 2,
        # through each filter.
        assert pnl.pnl(view, everything, as_of=ledger.last_sequence()) == now
        for n in sorted({s for a in answers if a.sequence for s in (a.sequence - 1, a.sequence)}):
            then_open, then_trades = model(answers, multipliers, as_of=n)
            for filters in FILTERS:
                wanted = {k: v for k, v in then_open.items() if filters.matches(k)}
                assert held(view, as_of=n, limit=2, filters=filters) == wanted
                then = pnl.pnl(view, filters, as_of=n)
                kept = [t for t in then_trades if filters.matches(t[:3])]
                assert {line.user: (Fraction(line.realised_pnl), line.trades, line.unpriced)
                        for line in then.by_user} == model_pnl(kept, 0)  # fmt: skip
        live = snapshot(view)
        replay(env, database.url)
        assert snapshot(view) == live
        view.datastore.close()


OLD_TABLES = (
    "CREATE TABLE {0}.view_positions (user_name text NOT NULL, strategy text NOT NULL,"
    " instrument text NOT NULL, order_id text NOT NULL, opened_at timestamptz NOT NULL,"
    " sequence bigint NOT NULL, PRIMARY KEY (user_name, strategy, instrument))",
    "CREATE TABLE {0}.view_trades (id bigserial PRIMARY KEY, user_name text NOT NULL,"
    " strategy text NOT NULL, instrument text NOT NULL, buy_order_id text NOT NULL,"
    " sell_order_id text NOT NULL, opened_at timestamptz NOT NULL,"
    " closed_at timestamptz NOT NULL, buy_sequence bigint NOT NULL,"
    " sell_sequence bigint NOT NULL)",
    "INSERT INTO {0}.view_positions VALUES ('Ann', 'S_A', 'I1', 'b2', now(), 3)",
    "INSERT INTO {0}.view_trades (user_name, strategy, instrument, buy_order_id,"
    " sell_order_id, opened_at, closed_at, buy_sequence, sell_sequence)"
    " VALUES ('Ann', 'S_A', 'I1', 'b1', 's1', now(), now(), 1, 2)",
)


def columns(view: LedgerView, schema: str) -> list[tuple[Any, ...]]:
    """The read tables' columns: name, type, default (its schema left out), generated."""
    statement = sql.Composed(
        [
            sql.SQL(
                "SELECT table_name, column_name, data_type, column_default, is_nullable,"
                " is_generated, generation_expression FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name LIKE 'view%%'"
                " ORDER BY table_name, ordinal_position"
            )
        ]
    )
    return [
        tuple(str(v).replace(schema, "SCHEMA") for v in row.values())
        for row in view.query(statement, [schema])
    ]


def test_read_tables_made_before_quantities_get_the_new_columns(database: Database) -> None:
    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {0}").format(sql.Identifier(database.schema))
        )
        for statement in OLD_TABLES:
            conn.execute(sql.SQL(statement).format(sql.Identifier(database.schema)))
    view = open_view(database.eventsourcing_env())  # creates what is missing, as a start does
    try:
        (position,) = queries.positions(view, queries.Filters()).positions
        assert (position.order_id, position.quantity, position.entry_price) == ("b2", "1", None)
        (trade,) = queries.trades(view, queries.Filters(), 10, None).trades
        assert (trade.quantity, trade.entry_price, trade.exit_price, trade.realised_pnl) == (
            "1", None, None, None,
        )  # fmt: skip
        assert pnl.pnl(view, queries.Filters()).total.unpriced == 1
        # The same columns, in the same order, as a store made new.
        with fresh_store(database.url) as new:
            made = open_view(new.eventsourcing_env())
            try:
                assert columns(view, database.schema) == columns(made, new.schema)
            finally:
                made.datastore.close()
    finally:
        view.datastore.close()
