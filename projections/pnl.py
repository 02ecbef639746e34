"""Realised P&L per user and per strategy, now or as of a past sequence, from the trades table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from psycopg.sql import SQL

from ledger.answers import Pnl, PnlLine, StrategyPnl, UserPnl
from projections.fold import EXACT, text
from projections.queries import (
    Filters,
    book_filters,
    equal,
    where_clause,
)
from projections.views import Cancellation, LedgerView

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


# The trades table added up per (user, strategy) in SQL: the groups are few however many
# trades there are. sum() over no priced trade is null, read as 0.
_GROUPS = SQL(
    "SELECT user_name, strategy, coalesce(sum(realised_pnl), 0) AS realised_pnl,"
    " count(*) AS trades, count(*) FILTER (WHERE realised_pnl > 0) AS winners,"
    " count(*) FILTER (WHERE realised_pnl < 0) AS losers,"
    " count(*) FILTER (WHERE realised_pnl IS NULL) AS unpriced FROM {0}"
)


def pnl(
    view: LedgerView,
    filters: Filters,
    cancellation: Cancellation | None = None,
    as_of: int | None = None,
) -> Pnl:
    """Realised P&L of the closed trades in the read table; of those closed up to sequence
    `as_of` when given (the read table must hold it)."""
    conditions, params = equal(book_filters(filters))
    if as_of is not None:
        conditions.append(SQL("sell_sequence <= %s"))
        params.append(as_of)
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
