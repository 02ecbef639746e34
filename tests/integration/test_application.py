"""Integration tests of the service layer on real PostgreSQL."""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ledger.answers import OrderAnswer, OrderRequest
from ledger.application import Ledger
from ledger.domain import Order, Position
from projections import fold as positions
from projections.fold import Opened
from projections.replay import placed_pages
from tests.support import EXAMPLE_PROFILES


def req(strategy: str, instrument: str, position: str, order_id: str | None = None) -> OrderRequest:
    return OrderRequest(strategy, instrument, Position(position), order_id)


def place(ledger: Ledger, *requests: OrderRequest) -> list[OrderAnswer]:
    return [outcome.answer for outcome in ledger.place_orders(list(requests))]


def order_log(ledger: Ledger) -> list[tuple[int, Any]]:
    """Every Placed event in the store, in sequence order."""
    top = ledger.last_sequence()
    return [(o.sequence, o) for page in placed_pages(ledger, top, 1000) for o in page]


def fold(log: list[tuple[int, Any]]) -> dict[tuple[str, str, str], str]:
    """Open positions after the order log (the fold refuses a double buy or a bare sell)."""
    open_: dict[tuple[str, str, str], Opened] = {}
    positions.fold([placed for _, placed in log], open_)
    return {key: opened.order_id for key, opened in open_.items()}


def open_positions(ledger: Ledger) -> dict[tuple[str, str, str], str]:
    return {
        (book.user, book.strategy, instrument): order_id
        for book in ledger.books()
        for instrument, order_id in book.open.items()
    }


def test_worked_example(ledger: Ledger) -> None:
    answers = place(
        ledger,
        req("STRATEGY_A", "GRASIM", "SELL"),
        req("STRATEGY_B", "MINDA", "BUY"),
        req("STRATEGY_D", "INFY", "BUY"),
        req("STRATEGY_A", "MINDA", "SELL"),
        req("STRATEGY_B", "MINDA", "SELL"),
    )
    assert [a.RESPONSE for a in answers] == [
        "REJECTED",
        "ACCEPTED",
        "REJECTED",
        "REJECTED",
        "ACCEPTED",
    ]
    assert answers[1].accepted_for == ["Holland Proctor"]
    assert answers[1].rejected_for == [
        {"user": "Kamryn Li", "reason": "INSTRUMENT_NOT_IN_STRATEGY"}
    ]
    assert answers[3].rejected_for == [
        {"user": "Holland Proctor", "reason": "INSTRUMENT_NOT_IN_STRATEGY"}
    ]
    sequences = [a.sequence for a in answers]
    assert sequences == sorted(sequences) and len(set(sequences)) == 5
    assert open_positions(ledger) == {}


def test_unknown_strategy(ledger: Ledger) -> None:
    (answer,) = place(ledger, req("STRATEGY_Z", "ACC", "BUY"))
    assert answer.RESPONSE == "REJECTED"
    assert answer.reason == "UNKNOWN_STRATEGY"
    assert answer.rejected_for == []


def test_every_order_is_an_event(ledger: Ledger) -> None:
    place(ledger, req("STRATEGY_B", "MINDA", "BUY", "a"), req("STRATEGY_Z", "X", "SELL", "b"))
    logged = order_log(ledger)
    assert [placed.order_id for _, placed in logged] == ["a", "b"]
    assert logged[1][1].reason == "UNKNOWN_STRATEGY"


def test_same_order_id_returns_first_answer_across_restart(
    ledger: Ledger, make_ledger: Any
) -> None:
    (first,) = place(ledger, req("STRATEGY_B", "MINDA", "BUY", "order-1"))
    (again,) = place(ledger, req("STRATEGY_B", "MINDA", "BUY", "order-1"))
    assert again == first
    top = ledger.last_sequence()

    restarted: Ledger = make_ledger()
    outcome = restarted.place_orders([req("STRATEGY_B", "MINDA", "BUY", "order-1")])[0]
    assert outcome.answer == first
    assert not outcome.reused_id
    assert restarted.last_sequence() == top  # nothing written
    # The restarted ledger knows the position is open.
    (buy,) = place(restarted, req("STRATEGY_B", "MINDA", "BUY", "order-2"))
    assert buy.rejected_for[0]["reason"] == "ALREADY_OPEN"


def test_reused_order_id_with_other_body_is_flagged(ledger: Ledger) -> None:
    place(ledger, req("STRATEGY_B", "MINDA", "BUY", "dup"))
    outcome = ledger.place_orders([req("STRATEGY_B", "ACC", "BUY", "dup")])[0]
    assert outcome.reused_id
    assert outcome.answer.instrument == "MINDA"
    assert len(order_log(ledger)) == 1


def test_a_sell_retried_with_a_quantity_it_did_not_give_is_flagged_after_a_restart(
    ledger: Ledger, make_ledger: Any
) -> None:
    place(ledger, req("STRATEGY_B", "MINDA", "BUY"))
    (sold,) = place(ledger, req("STRATEGY_B", "MINDA", "SELL", "s-1"))
    restarted: Ledger = make_ledger()  # the answer comes from the store, not from memory
    given = replace(req("STRATEGY_B", "MINDA", "SELL", "s-1"), quantity_given=True)
    outcome = restarted.place_orders([given])[0]
    assert outcome.reused_id
    assert outcome.answer == sold
    same = restarted.place_orders([req("STRATEGY_B", "MINDA", "SELL", "s-1")])[0]
    assert not same.reused_id


def test_duplicate_order_ids_within_one_batch(ledger: Ledger) -> None:
    outcomes = ledger.place_orders(
        [req("STRATEGY_B", "MINDA", "BUY", "x"), req("STRATEGY_B", "MINDA", "BUY", "x")]
    )
    assert outcomes[0].answer == outcomes[1].answer
    assert outcomes[0].answer.RESPONSE == "ACCEPTED"
    assert len(order_log(ledger)) == 1


def test_stale_instance_reloads_and_does_not_double_buy(ledger: Ledger, make_ledger: Any) -> None:
    other: Ledger = make_ledger()
    other.books()  # load the books into the second instance's memory
    (first,) = place(ledger, req("STRATEGY_B", "MINDA", "BUY"))
    (second,) = place(other, req("STRATEGY_B", "MINDA", "BUY"))  # stale cache: conflict, retry
    assert first.RESPONSE == "ACCEPTED"
    assert second.RESPONSE == "REJECTED"
    assert second.rejected_for[0] == {"user": "Holland Proctor", "reason": "ALREADY_OPEN"}
    (sell,) = place(ledger, req("STRATEGY_B", "MINDA", "SELL"))  # first instance is stale now
    assert sell.accepted_for == ["Holland Proctor"]


def test_two_instances_racing_never_double_book(ledger: Ledger, make_ledger: Any) -> None:
    instances = [ledger, make_ledger()]
    answers: list[dict[str, Any]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run(instance: Ledger, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(30):
            batch = [
                req("STRATEGY_B", rng.choice(["MINDA", "ACC"]), rng.choice(["BUY", "SELL"]))
                for _ in range(rng.randint(1, 4))
            ]
            try:
                got = place(instance, *batch)
            except Exception as failure:
                failures.append(failure)
                return
            with lock:
                answers.extend(got)

    threads = [threading.Thread(target=run, args=(inst, n)) for n, inst in enumerate(instances)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    logged = order_log(ledger)
    assert len(logged) == len(answers)  # every answered order is logged, once
    by_id = {placed.order_id: (seq, placed) for seq, placed in logged}
    for answer in answers:
        seq, placed = by_id[answer.order_id]
        assert answer.sequence == seq
        assert answer.accepted_for == placed.accepted_for
    final = fold(logged)
    reloaded: Ledger = make_ledger()
    assert open_positions(reloaded) == final


def test_profile_import_is_idempotent_and_records_changes(ledger: Ledger, make_ledger: Any) -> None:
    top = ledger.last_sequence()
    assert ledger.import_profiles(EXAMPLE_PROFILES).events == 0
    assert ledger.last_sequence() == top
    assert make_ledger().import_profiles(EXAMPLE_PROFILES).events == 0
    assert ledger.profiles() == EXAMPLE_PROFILES

    place(ledger, req("STRATEGY_B", "MINDA", "BUY", "b1"))
    changed = {
        "Holland Proctor": {"STRATEGY_A": ["GRASIM", "INFY", "ACC"]},  # B dropped, MINDA open
        "Kamryn Li": {"STRATEGY_B": ["ACC"], "STRATEGY_D": ["NTPC"]},
        "New User": {"STRATEGY_B": ["MINDA"]},
    }
    fresh: Ledger = make_ledger()
    report = fresh.import_profiles(changed)
    assert report.added == [("New User", "STRATEGY_B")]
    assert report.changed == [("Holland Proctor", "STRATEGY_A")]
    assert report.dropped == [("Holland Proctor", "STRATEGY_B")]
    assert report.kept_open == [("Holland Proctor", "STRATEGY_B", "MINDA")]
    assert fresh.profiles() == changed

    # The open position survives the drop and can still be closed.
    (sell,) = place(fresh, req("STRATEGY_B", "MINDA", "SELL"))
    assert sell.accepted_for == ["Holland Proctor"]
    assert {"user": "Kamryn Li", "reason": "INSTRUMENT_NOT_IN_STRATEGY"} in sell.rejected_for
    assert {"user": "New User", "reason": "NO_OPEN_POSITION"} in sell.rejected_for
    (buy,) = place(fresh, req("STRATEGY_B", "MINDA", "BUY"))
    assert buy.accepted_for == ["New User"]  # Holland no longer trades STRATEGY_B


def test_order_record_holds_request_time_and_decisions(ledger: Ledger) -> None:
    (answer,) = place(ledger, req("STRATEGY_B", "MINDA", "BUY", "rec"))
    order: Any = ledger.repository.get(Order.create_id("rec"))
    assert order.received_at.tzinfo is not None
    assert order.accepted_for == answer.accepted_for
    assert order.rejected_for == answer.rejected_for
    assert ledger.get_order("rec") == answer


ORDERS = st.lists(
    st.tuples(
        st.sampled_from(["STRATEGY_A", "STRATEGY_B", "STRATEGY_D"]),
        st.sampled_from(["GRASIM", "MINDA", "ACC", "NTPC"]),
        st.sampled_from(["BUY", "SELL"]),
    ),
    max_size=25,
)


@given(orders=ORDERS, batch=st.integers(1, 5))
@hsettings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_replay_equals_live_state(database: Any, orders: list[Any], batch: int) -> None:
    # Examples share the test's schema, so each one continues from the previous state.
    with Ledger(env=database.eventsourcing_env()) as live:
        live.import_profiles(EXAMPLE_PROFILES)
        requests = [req(*o) for o in orders]
        for start in range(0, len(requests), batch):
            live.place_orders(requests[start : start + batch])
        with Ledger(env=database.eventsourcing_env()) as replayed:
            assert open_positions(replayed) == open_positions(live)
        assert fold(order_log(live)) == open_positions(live)


def test_a_book_added_by_another_process_is_seen(ledger: Ledger, make_ledger: Any) -> None:
    place(ledger, req("STRATEGY_B", "ACC", "BUY"))  # this instance has read the roster
    other: Ledger = make_ledger()
    other.import_profiles({**EXAMPLE_PROFILES, "New User": {"STRATEGY_B": ["MINDA"]}})
    (answer,) = place(ledger, req("STRATEGY_B", "MINDA", "BUY"))
    assert sorted(answer.accepted_for) == ["Holland Proctor", "New User"]
