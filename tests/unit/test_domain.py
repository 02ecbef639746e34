"""Unit tests of the rules: pure domain, no database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

import orjson
import pytest
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ledger.amounts import ONE, closed_numbers, opened_numbers
from ledger.answers import OrderAnswer
from ledger.domain import Book, Order, OrderRefused, Position, Reason, decide
from ledger.rules import multipliers
from tests.support import EXAMPLE_PROFILES

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def books_for(profiles: dict[str, dict[str, list[str]]]) -> dict[str, list[Book]]:
    by_strategy: dict[str, list[Book]] = {}
    for user, strategies in profiles.items():
        for strategy, instruments in strategies.items():
            book = Book(user=user, strategy=strategy, instruments=instruments)
            by_strategy.setdefault(strategy, []).append(book)
    return by_strategy


def test_worked_example() -> None:
    books = books_for(EXAMPLE_PROFILES)

    def place(n: int, strategy: str, instrument: str, position: str) -> Any:
        booked, rejected, reason = decide(
            books.get(strategy, []), str(n), instrument, Position(position), NOW
        )
        return [b.user for b in booked], rejected, reason

    accepted, rejected, reason = place(1, "STRATEGY_A", "GRASIM", "SELL")
    assert (accepted, reason) == ([], None)
    assert rejected == [{"user": "Holland Proctor", "reason": "NO_OPEN_POSITION"}]

    accepted, rejected, _ = place(2, "STRATEGY_B", "MINDA", "BUY")
    assert accepted == ["Holland Proctor"]
    assert rejected == [{"user": "Kamryn Li", "reason": "INSTRUMENT_NOT_IN_STRATEGY"}]

    accepted, rejected, _ = place(3, "STRATEGY_D", "INFY", "BUY")
    assert accepted == []
    assert rejected == [{"user": "Kamryn Li", "reason": "INSTRUMENT_NOT_IN_STRATEGY"}]

    # #4 as printed: STRATEGY_A does not trade MINDA, so there is nothing to sell there.
    accepted, rejected, _ = place(4, "STRATEGY_A", "MINDA", "SELL")
    assert accepted == []
    assert rejected == [{"user": "Holland Proctor", "reason": "INSTRUMENT_NOT_IN_STRATEGY"}]

    # The SELL that #4 means closes #2's position.
    accepted, rejected, _ = place(5, "STRATEGY_B", "MINDA", "SELL")
    assert accepted == ["Holland Proctor"]
    assert rejected == [{"user": "Kamryn Li", "reason": "INSTRUMENT_NOT_IN_STRATEGY"}]


def test_unknown_strategy_lists_nobody() -> None:
    assert decide([], "1", "ACC", Position.BUY, NOW) == ([], [], "UNKNOWN_STRATEGY")


def test_double_buy_is_refused_and_changes_nothing() -> None:
    book = Book(user="u", strategy="S", instruments=["ACC"])
    book.book("1", "ACC", Position.BUY, NOW)
    version = book.version
    with pytest.raises(OrderRefused) as refused:
        book.book("2", "ACC", Position.BUY, NOW)
    assert refused.value.reason is Reason.ALREADY_OPEN
    assert book.version == version
    assert book.open == {"ACC": "1"}


def test_sell_closes_the_buy_it_names() -> None:
    book = Book(user="u", strategy="S", instruments=["ACC"])
    book.book("b1", "ACC", Position.BUY, NOW)
    book.book("s1", "ACC", Position.SELL, NOW)
    closed = book.collect_events()[-1]
    assert type(closed).__name__ == "PositionClosed"
    assert closed.buy_order_id == "b1"  # type: ignore[attr-defined]
    assert book.open == {}


def test_dropped_strategy_keeps_open_position_until_sold() -> None:
    book = Book(user="u", strategy="S", instruments=["ACC"])
    book.book("b1", "ACC", Position.BUY, NOW)
    book.drop()
    assert book.concerned
    with pytest.raises(OrderRefused):
        book.book("b2", "NTPC", Position.BUY, NOW)
    book.book("s1", "ACC", Position.SELL, NOW)
    assert not book.concerned


def test_ids_are_deterministic() -> None:
    assert Book.create_id("u", "S") == Book.create_id("u", "S")
    assert Book.create_id("u", "S") != Book.create_id("u", "T")
    assert Order.create_id("x") == Order.create_id("x")


def test_order_answer_shape() -> None:
    order = Order(
        order_id="o1",
        strategy="S",
        instrument="ACC",
        position="BUY",
        received_at=NOW,
        accepted_for=["u"],
        rejected_for=[],
        reason=None,
    )
    assert orjson.loads(orjson.dumps(OrderAnswer.of(order, 7))) == {
        "RESPONSE": "ACCEPTED",
        "order_id": "o1",
        "sequence": 7,
        "strategy": "S",
        "instrument": "ACC",
        "position": "BUY",
        "accepted_for": ["u"],
        "rejected_for": [],
        "reason": None,
        "quantity": 1,
        "price": None,
    }


def test_quantity_price_and_multiplier_are_booked_exactly() -> None:
    book = Book(user="u", strategy="S", instruments=["ACC"], multiplier="2.5")
    book.book("b1", "ACC", Position.BUY, NOW, 3, "101.1")
    assert book.sizes == {"ACC": {"order_quantity": 3, "quantity": "7.5", "price": "101.1"}}
    with pytest.raises(OrderRefused) as refused:
        book.book("s1", "ACC", Position.SELL, NOW, 2, "99")
    assert refused.value.reason is Reason.QUANTITY_MISMATCH
    assert book.open == {"ACC": "b1"}
    book.book("s2", "ACC", Position.SELL, NOW, 3, "99")
    opened, closed = book.collect_events()[1:]
    assert opened_numbers(opened) == ("7.5", 3, "101.1")
    assert closed_numbers(closed) == ("7.5", "99", "101.1")
    assert (book.open, book.sizes) == ({}, {})


def test_books_an_order_opens_alike_share_one_lot() -> None:
    books = [Book(user=u, strategy="S", instruments=["ACC"]) for u in ("a", "b")]
    other = Book(user="c", strategy="S", instruments=["ACC"], multiplier="2")
    for book in [*books, other]:
        book.book("b1", "ACC", Position.BUY, NOW, 3, "101.1")
    a, b = books
    assert a.sizes["ACC"] is b.sizes["ACC"]  # held once for thousands of followers
    assert other.sizes["ACC"] == {"order_quantity": 3, "quantity": "6", "price": "101.1"}
    a.book("s1", "ACC", Position.SELL, NOW, 3, "99")
    assert b.sizes["ACC"] == {"order_quantity": 3, "quantity": "3", "price": "101.1"}


def test_a_sell_without_quantity_closes_what_is_open() -> None:
    book = Book(user="u", strategy="S", instruments=["ACC"])
    book.book("b1", "ACC", Position.BUY, NOW, 40)
    book.book("s1", "ACC", Position.SELL, NOW)
    assert closed_numbers(book.collect_events()[-1]) == ("40", None, None)


def test_multipliers_name_the_accepted_users_not_1() -> None:
    plain = Book(user="a", strategy="S", instruments=["ACC"])
    scaled = Book(user="b", strategy="S", instruments=["ACC"], multiplier="3")
    other = Book(user="c", strategy="S", instruments=["NTPC"], multiplier="2")
    books = [plain, scaled, other]
    booked, _, _ = decide(books, "1", "ACC", Position.BUY, NOW, 2)
    assert booked == [plain, scaled]
    accepted = [b.user for b in booked]
    assert multipliers(books, accepted) == {"b": "3"}
    assert multipliers([plain], ["a"]) is None


def test_events_stored_before_quantities_read_as_1_at_no_price() -> None:
    class Old:
        """An event rebuilt from its stored dict: no attribute it did not have."""

    assert opened_numbers(Old()) == ("1", 1, None)
    assert closed_numbers(Old()) == ("1", None, None)


# Exact decimals within the limits: canonical strings, as the parsers give them.
AMOUNTS = st.decimals(
    min_value=Decimal("0.00000001"),
    max_value=Decimal("999999999999.99999999"),
    places=8,
    allow_nan=False,
    allow_infinity=False,
).map(lambda d: format(d.normalize(), "f"))
USERS = ["u1", "u2", "u3"]
STRATEGIES = ["S1", "S2"]
INSTRUMENTS = ["ACC", "L&T", "INFY"]


class RulesMachine(RuleBasedStateMachine):
    """Books against a model of the rules; replaying a book's events gives the live book."""

    def __init__(self) -> None:
        super().__init__()
        self.books: dict[tuple[str, str], Book] = {}
        self.events: dict[tuple[str, str], list[Any]] = {}
        self.lists: dict[tuple[str, str], set[str]] = {}  # model: instruments per active book
        self.open: dict[tuple[str, str], dict[str, str]] = {}  # model: open positions
        self.multiplier: dict[tuple[str, str], str] = {}  # model: multiplier per book
        # model: open position -> (order quantity, booked quantity, entry price)
        self.sizes: dict[tuple[str, str], dict[str, tuple[int, Decimal, str | None]]] = {}
        self.n = 0

    def _keep_events(self, book: Book) -> None:
        self.events.setdefault((book.user, book.strategy), []).extend(book.collect_events())

    @rule(
        user=st.sampled_from(USERS),
        strategy=st.sampled_from(STRATEGIES),
        instruments=st.lists(st.sampled_from(INSTRUMENTS), max_size=3, unique=True),
        multiplier=st.just(ONE) | AMOUNTS,
    )
    def take_up_or_change(
        self, user: str, strategy: str, instruments: list[str], multiplier: str
    ) -> None:
        key = (user, strategy)
        if key in self.books:
            self.books[key].change_instruments(instruments=instruments, multiplier=multiplier)
        else:
            self.books[key] = Book(
                user=user, strategy=strategy, instruments=instruments, multiplier=multiplier
            )
            self.open[key] = {}
            self.sizes[key] = {}
        self.lists[key] = set(instruments)
        self.multiplier[key] = multiplier
        self._keep_events(self.books[key])

    @rule(user=st.sampled_from(USERS), strategy=st.sampled_from(STRATEGIES))
    def drop(self, user: str, strategy: str) -> None:
        key = (user, strategy)
        if key in self.books:
            self.books[key].drop()
            self.lists.pop(key, None)
            self._keep_events(self.books[key])

    @rule(
        strategy=st.sampled_from(STRATEGIES),
        instrument=st.sampled_from(INSTRUMENTS),
        position=st.sampled_from(list(Position)),
        quantity=st.none() | st.integers(1, 3) | st.integers(1, 10**9),
        price=st.none() | AMOUNTS,
    )
    def order(
        self,
        strategy: str,
        instrument: str,
        position: Position,
        quantity: int | None,
        price: str | None,
    ) -> None:
        self.n += 1
        order_id = str(self.n)
        books = [b for (_, s), b in sorted(self.books.items()) if s == strategy]
        booked_in, rejected, reason = decide(
            books, order_id, instrument, position, NOW, quantity, price
        )
        accepted = [b.user for b in booked_in]
        expected_accepted, expected_rejected = [], []
        for (user, s), opened in sorted(self.open.items()):
            if s != strategy or ((user, s) not in self.lists and not opened):
                continue
            listed = instrument in self.lists.get((user, s), set())
            if position is Position.BUY:
                why = None if listed and instrument not in opened else "ALREADY_OPEN"
                if not listed:
                    why = "INSTRUMENT_NOT_IN_STRATEGY"
            elif instrument in opened:
                asked = self.sizes[user, s][instrument][0]
                why = None if quantity in (None, asked) else "QUANTITY_MISMATCH"
            else:
                why = "NO_OPEN_POSITION" if listed else "INSTRUMENT_NOT_IN_STRATEGY"
            if why is None:
                expected_accepted.append(user)
                size = self.sizes[user, s]
                if position is Position.BUY:
                    opened[instrument] = order_id
                    with localcontext(prec=64):
                        booked = (quantity or 1) * Decimal(self.multiplier[user, s])
                    size[instrument] = (quantity or 1, booked, price)
                else:
                    del opened[instrument]
                    closing = size.pop(instrument)
                    book = self.books[user, s]
                    closed = closed_numbers(book.pending_events[-1])
                    assert closed == (format(closing[1].normalize(), "f"), price, closing[2])
            else:
                expected_rejected.append({"user": user, "reason": why})
        assert accepted == expected_accepted
        assert rejected == expected_rejected
        assert reason == (None if expected_accepted or expected_rejected else "UNKNOWN_STRATEGY")
        for book in books:
            self._keep_events(book)

    @invariant()
    def books_match_model(self) -> None:
        for key, book in self.books.items():
            assert book.open == self.open[key]
            assert book.active == (key in self.lists)
            assert book.multiplier == self.multiplier[key]
            held = {
                i: (s["order_quantity"], Decimal(s["quantity"]), s["price"])
                for i, s in book.sizes.items()
            }
            assert held == self.sizes[key]

    @invariant()
    def replay_equals_live(self) -> None:
        for key, book in self.books.items():
            replayed: Any = None
            for domain_event in self.events[key]:
                replayed = domain_event.mutate(replayed)
            assert replayed.open == book.open
            assert replayed.sizes == book.sizes
            assert replayed.multiplier == book.multiplier
            assert replayed.instruments == book.instruments
            assert replayed.active == book.active
            assert replayed.version == book.version


TestRules = RulesMachine.TestCase
TestRules.settings = hsettings(max_examples=200, stateful_step_count=40, deadline=None)
