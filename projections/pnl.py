"""Realised P&L per user and per strategy, and reads as of a past sequence (folded from events)."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from eventsourcing.application import Application
from psycopg.sql import SQL

from ledger.answers import OpenPosition, Pnl, PnlLine, Positions, StrategyPnl, UserPnl
from projections.fold import EXACT, Closed, Key, Opened, PlacedOrder, fold, text
from projections.queries import (
    MAX_POSITIONS,
    Filters,
    book_filters,
    equal,
    position_cursor,
    where_clause,
)
from projections.replay import placed_pages
from projections.views import Cancellation, LedgerView

PAGE = 5000  # orders folded at a time by a read as of a past sequence
ZERO = Decimal(0)


@dataclass
class Tally:
    """Closed trades added up: the sum of their known P&L and how many won, lost, or are unknown."""

    realised_pnl: Decimal = ZERO
    trades: int = 0
    winners: int = 0
    losers: int = 0
    unpriced: int = 0

    @classmethod
    def of(cls, realised_pnl: Decimal | None) -> Tally:
        """One trade; None is a trade with an unknown entry or exit price."""
        if realised_pnl is None:
            return cls(ZERO, 1, 0, 0, 1)
        return cls(realised_pnl, 1, int(realised_pnl > 0), int(realised_pnl < 0), 0)

    def add(self, other: Tally) -> None:
        """Add other's trades to these, exactly."""
        self.realised_pnl = EXACT.add(self.realised_pnl, other.realised_pnl)
        self.trades += other.trades
        self.winners += other.winners
        self.losers += other.losers
        self.unpriced += other.unpriced

    def fields(self) -> dict[str, Any]:
        """The answer's fields: the sum as an exact decimal string."""
        return {
            "realised_pnl": text(self.realised_pnl) or "0",
            "trades": self.trades,
            "winners": self.winners,
            "losers": self.losers,
            "unpriced": self.unpriced,
        }


def summary(groups: Iterable[tuple[str, str, Tally]]) -> Pnl:
    """The answer from (user, strategy, tally) groups: per user, per strategy, in all."""
    users: dict[str, Tally] = {}
    strategies: dict[str, Tally] = {}
    total = Tally()
    for user, strategy, tally in groups:
        users.setdefault(user, Tally()).add(tally)
        strategies.setdefault(strategy, Tally()).add(tally)
        total.add(tally)
    return Pnl(
        [UserPnl(user, **users[user].fields()) for user in sorted(users)],
        [StrategyPnl(strategy, **strategies[strategy].fields()) for strategy in sorted(strategies)],
        PnlLine(**total.fields()),
    )


def trade_groups(closed: Iterable[Closed]) -> Iterator[tuple[str, str, Tally]]:
    """Each trade as a group of its own."""
    for trade in closed:
        yield trade.key[0], trade.key[1], Tally.of(trade.realised_pnl)


# The trades table added up per (user, strategy) in SQL: the groups are few however many
# trades there are. sum() over no priced trade is null, read as 0.
_GROUPS = SQL(
    "SELECT user_name, strategy, coalesce(sum(realised_pnl), 0) AS realised_pnl,"
    " count(*) AS trades, count(*) FILTER (WHERE realised_pnl > 0) AS winners,"
    " count(*) FILTER (WHERE realised_pnl < 0) AS losers,"
    " count(*) FILTER (WHERE realised_pnl IS NULL) AS unpriced FROM {0}"
)


def pnl(view: LedgerView, filters: Filters, cancellation: Cancellation | None = None) -> Pnl:
    """Realised P&L of the closed trades in the read table."""
    conditions, params = equal(book_filters(filters))
    statement = (
        _GROUPS.format(view.tables["trades"])
        + where_clause(conditions)
        + SQL(" GROUP BY user_name, strategy")
    )
    rows = view.query(statement, params, cancellation)
    return summary(
        (
            r["user_name"],
            r["strategy"],
            Tally(r["realised_pnl"], r["trades"], r["winners"], r["losers"], r["unpriced"]),
        )
        for r in rows
    )


def only(orders: Iterable[PlacedOrder], filters: Filters) -> Iterator[PlacedOrder]:
    """The orders as `filters` sees them: others' books left out before folding, so a fold
    for one user or strategy holds only its open positions."""
    for order in orders:
        if filters.strategy not in (None, order.strategy):
            continue
        if filters.instrument not in (None, order.instrument):
            continue
        if filters.user is None:
            yield order
        elif filters.user in order.accepted_for:
            yield replace(order, accepted_for=[filters.user], rejected_for=[])


def _fold_to(
    app: Application[Any],
    sequence: int,
    filters: Filters,
    cancellation: Cancellation | None,
    closing: Callable[[list[Closed]], None] | None = None,
) -> dict[Key, Opened]:
    """Open positions passing `filters` right after `sequence`, from the stored events;
    `closing` is handed each page's closed trades, which are not kept: memory stays with the
    open positions, not the history."""
    open_: dict[Key, Opened] = {}
    for page in placed_pages(app, sequence, PAGE):
        if cancellation is not None:
            cancellation.check()  # an abandoned fold stops at the next page
        closed = fold(only(page, filters), open_)
        if closing is not None:
            closing(closed)
    return open_


def positions_as_of(
    app: Application[Any],
    sequence: int,
    filters: Filters,
    limit: int = MAX_POSITIONS,
    after: Key | None = None,
    cancellation: Cancellation | None = None,
) -> Positions:
    """A page of the open positions right after `sequence`, folded from the stored events,
    in key order as the read table's pages are."""
    open_ = _fold_to(app, sequence, filters, cancellation)
    keys = open_.keys() if after is None else (k for k in open_ if k > after)
    page = heapq.nsmallest(limit + 1, keys)  # not a sorted copy of every open position
    return Positions(
        [
            OpenPosition(
                *key,
                open_[key].order_id,
                open_[key].at,
                text(open_[key].quantity) or "0",
                text(open_[key].price),
            )
            for key in page[:limit]
        ],
        position_cursor(page[limit - 1]) if len(page) > limit else None,
    )


def pnl_as_of(
    app: Application[Any],
    sequence: int,
    filters: Filters,
    cancellation: Cancellation | None = None,
) -> Pnl:
    """Realised P&L of the trades closed up to `sequence`, folded from the stored events."""
    groups: dict[tuple[str, str], Tally] = {}

    def add(closed: list[Closed]) -> None:
        for user, strategy, tally in trade_groups(closed):  # only what the filters see
            groups.setdefault((user, strategy), Tally()).add(tally)

    _fold_to(app, sequence, filters, cancellation, add)
    return summary((user, strategy, tally) for (user, strategy), tally in groups.items())
