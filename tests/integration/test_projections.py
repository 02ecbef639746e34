"""The read models on real PostgreSQL: live, resumed and rebuilt from zero agree with a model."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.projection import ProjectionRunner
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from psycopg import sql

from ledger.answers import OrderAnswer, OrderRequest
from ledger.application import Ledger
from ledger.domain import Book, Position
from ledger.overrides.storage import BatchingProjectionRunner
from ledger.settings import Settings
from ledger.store.database import Database
from projections import queries, views
from projections.fold import Key, Opened, PlacedOrder, fold
from projections.projection import LedgerProjection
from projections.replay import replay
from projections.roster import BookRows
from projections.runner import ProjectionService, open_view
from projections.views import LedgerView
from tests.support import EXAMPLE_PROFILES

NOW = datetime.now(UTC)


def snapshot(view: LedgerView) -> dict[str, list[dict[str, Any]]]:
    """Every row of the three read tables, in a fixed order."""
    return {
        name: view.query(
            sql.SQL("SELECT * FROM {0} ORDER BY 1, 2, 3").format(view.tables[name]), []
        )
        for name in ("orders", "positions", "trades")
    }


def model(answers: list[OrderAnswer]) -> tuple[dict[Any, str], list[tuple[Any, ...]]]:
    """Open positions and closed trades, folded from the POST answers in sequence order."""
    orders = [
        PlacedOrder(
            a.sequence or 0,
            a.order_id,
            a.strategy,
            a.instrument,
            a.position,
            NOW,  # answers carry no time; the model compares ids only
            a.accepted_for,
            a.rejected_for,
            a.reason,
        )
        for a in sorted(answers, key=lambda a: a.sequence or 0)
    ]
    open_: dict[Key, Opened] = {}
    closed = fold(orders, open_)
    trades = [(*c.key, c.buy.order_id, c.sell.order_id) for c in closed]
    return {key: opened.order_id for key, opened in open_.items()}, trades


def from_view(view: LedgerView) -> tuple[dict[Any, str], list[tuple[Any, ...]]]:
    positions = {
        (p.user, p.strategy, p.instrument): p.order_id
        for p in queries.positions(view, queries.Filters()).positions
    }
    page = queries.trades(view, queries.Filters(), 1000, None)
    return positions, [
        (t.user, t.strategy, t.instrument, t.buy_order_id, t.sell_order_id) for t in page.trades
    ]


@contextmanager
def fresh_store(database_url: str) -> Iterator[Database]:
    """A schema of its own, for one hypothesis example."""
    schema = f"p_{uuid.uuid4().hex[:12]}"
    database = Database.open(Settings(database_url=database_url, db_schema=schema))
    try:
        yield database
    finally:
        database.close()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def empty_view(settings: Settings) -> Iterator[LedgerView]:
    """The read tables of a new store, with no projector running."""
    database = Database.open(settings)
    try:
        view = open_view(database.eventsourcing_env())
        try:
            yield view
        finally:
            view.datastore.close()
    finally:
        database.close()


def runner(env: dict[str, str], *, batching: bool = False) -> ProjectionRunner[Ledger, LedgerView]:
    kind = BatchingProjectionRunner if batching else ProjectionRunner
    return kind(
        application_class=Ledger,
        projection_class=LedgerProjection,
        view_class=LedgerView,
        env=env,
    )


ORDERS = st.lists(
    st.tuples(
        st.sampled_from(["STRATEGY_A", "STRATEGY_B", "STRATEGY_D", "STRATEGY_Z"]),
        st.sampled_from(["GRASIM", "MINDA", "ACC", "NTPC"]),
        st.sampled_from(["BUY", "SELL"]),
    ),
    max_size=40,
)


@given(orders=ORDERS, batch=st.integers(1, 6), split=st.floats(0, 1))
@hsettings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_incremental_equals_rebuilt_equals_model(
    database_url: str, orders: list[Any], batch: int, split: float
) -> None:
    requests = [OrderRequest(s, i, Position(p)) for s, i, p in orders]
    cut = int(len(requests) * split)
    answers: list[OrderAnswer] = []
    with fresh_store(database_url) as database, Ledger(env=database.eventsourcing_env()) as ledger:
        env = database.eventsourcing_env()
        ledger.import_profiles(EXAMPLE_PROFILES)
        # Two runs of the projection: the second resumes where the first stopped, and
        # processes events in batches where the first took them one at a time.
        for part, batching in ((requests[:cut], False), (requests[cut:], True)):
            with runner(env, batching=batching) as run:
                for start in range(0, len(part), batch):
                    outcomes = ledger.place_orders(part[start : start + batch])
                    answers.extend(o.answer for o in outcomes if isinstance(o.answer, OrderAnswer))
                run.wait(ledger.last_sequence(), timeout=30)
        view = open_view(env)
        live = snapshot(view)
        assert len(live["orders"]) == len(answers)  # nothing processed twice or skipped
        assert from_view(view) == model(answers)
        replay(env, database.url)
        assert snapshot(view) == live
        view.datastore.close()


def test_replay_refuses_while_a_projector_runs(database: Database) -> None:
    env = database.eventsourcing_env()
    service = ProjectionService(env, database.url)
    service.start()
    try:
        assert service.running.wait(timeout=30)
        try:
            replay(env, database.url)
        except RuntimeError as refused:
            assert "stop it" in str(refused)
        else:
            raise AssertionError("replay ran beside a live projector")
    finally:
        service.stop()
    assert not service.running.is_set()
    replay(env, database.url)  # and runs once the projector has stopped


def test_positions_as_of_a_past_sequence(ledger: Ledger, database: Database) -> None:
    buy = ledger.place_orders([OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "b")])[0]
    sell = ledger.place_orders([OrderRequest("STRATEGY_B", "MINDA", Position.SELL, "s")])[0]
    again = ledger.place_orders([OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "b2")])[0]
    env = database.eventsourcing_env()
    with runner(env, batching=True) as run:
        run.wait(ledger.last_sequence(), timeout=30)
    view = open_view(env)
    everything = queries.Filters()
    assert buy.answer.sequence and sell.answer.sequence and again.answer.sequence

    def held(as_of: int, filters: queries.Filters = everything) -> list[tuple[str, str]]:
        page = queries.positions(view, filters, as_of=as_of).positions
        return [(p.user, p.order_id) for p in page]

    assert held(buy.answer.sequence) == [("Holland Proctor", "b")]  # closed since: a trade
    assert held(sell.answer.sequence) == []
    assert held(buy.answer.sequence - 1) == []
    assert held(buy.answer.sequence, queries.Filters(user="Kamryn Li")) == []
    assert held(again.answer.sequence) == [("Holland Proctor", "b2")]  # still open
    assert held(again.answer.sequence) == [
        (p.user, p.order_id) for p in queries.positions(view, everything).positions
    ]
    view.datastore.close()


def test_a_view_batch_commits_without_waiting_for_the_disk(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rebuilt from the events if lost: its transaction does not wait for its WAL flush.
    with empty_view(settings) as view:
        setting = "SELECT current_setting('synchronous_commit') AS s"
        name = LedgerProjection.name
        with view.datastore.get_connection() as conn:
            default = conn.execute(setting).fetchone()
            with conn.transaction(force_rollback=True):  # the view's function, seen from inside
                view.call_apply(None, Tracking(notification_id=1, application_name=name), conn)
                inside = conn.execute(setting).fetchone()
            after = conn.execute(setting).fetchone()
        assert default is not None and default["s"] != "off"
        assert inside == {"s": "off"}
        assert after == default  # for that transaction only
        view.write(None, Tracking(notification_id=1, application_name=name))
        assert view.max_tracking_id(name) == 1  # and it was committed

        # A batch with book changes is written statement by statement, also without waiting.
        seen: list[str] = []
        insert_tracking = views.insert_tracking

        def spying(recorder: Any, curs: Any, tracking: Tracking) -> None:
            seen.append(curs.execute(setting).fetchone()["s"])
            insert_tracking(recorder, curs, tracking)

        monkeypatch.setattr(views, "insert_tracking", spying)
        books = BookRows()
        taken_up = Book(user="Ann", strategy="S", instruments=["ACC"]).collect_events()[0]
        books.add(taken_up, 2)
        view.write(None, Tracking(notification_id=2, application_name=name), books)
        assert seen == ["off"]
        assert view.max_tracking_id(name) == 2


def test_a_view_batch_that_would_move_tracking_back_writes_nothing(settings: Settings) -> None:
    # The batch and its tracking record are one transaction: a refused record takes the
    # batch's rows with it, as eventsourcing's own tracking recorder refuses it.
    with empty_view(settings) as view:
        name = LedgerProjection.name

        def placed(n: int, user: str) -> PlacedOrder:
            return PlacedOrder(n, f"o{n}", "S", "ACC", "BUY", NOW, [user], [], None)

        view.apply([placed(5, "Ann")], Tracking(notification_id=5, application_name=name))
        with pytest.raises(IntegrityError, match="would not move forward"):
            view.apply([placed(4, "Bob")], Tracking(notification_id=4, application_name=name))
        rows = {
            table: view.query(sql.SQL("SELECT * FROM {0}").format(view.tables[table]), [])
            for table in ("orders", "positions")
        }
        assert [r["order_id"] for r in rows["orders"]] == ["o5"]
        assert [r["user_name"] for r in rows["positions"]] == ["Ann"]
        assert view.max_tracking_id(name) == 5


def test_trade_ids_follow_the_last_trade_stored_not_the_sequence(settings: Settings) -> None:
    # A view batch lost in a crash of PostgreSQL is projected again; its trades must get the
    # same ids (the trades pages' cursor), though the id sequence, logged ahead, moved on.
    with empty_view(settings) as view:
        trades = view.tables["trades"]
        with view.datastore.transaction(commit=True) as curs:  # ids a lost batch took
            for _ in range(5):
                curs.execute(
                    sql.SQL("SELECT nextval(pg_get_serial_sequence(%s, 'id'))"),
                    (trades.as_string(curs.connection),),
                )
        users = ["Ann", "Bob", "Cy"]

        def placed(n: int, position: str) -> PlacedOrder:
            return PlacedOrder(n, f"o{n}", "S", "ACC", position, NOW, users, [], None)

        for n, position in enumerate(["BUY", "SELL", "BUY", "SELL"], 1):
            view.apply(
                [placed(n, position)],
                Tracking(notification_id=n, application_name=LedgerProjection.name),
            )
        rows = view.query(
            sql.SQL("SELECT id, user_name, sell_order_id FROM {0} ORDER BY id").format(trades), []
        )
        assert [(r["id"], r["user_name"], r["sell_order_id"]) for r in rows] == [
            (1, "Ann", "o2"),
            (2, "Bob", "o2"),
            (3, "Cy", "o2"),
            (4, "Ann", "o4"),
            (5, "Bob", "o4"),
            (6, "Cy", "o4"),
        ]
