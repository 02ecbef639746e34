"""The composition root hands each writer process the strategies it owns."""

from __future__ import annotations

from ledger.bootstrap import Services
from ledger.settings import Settings
from ledger.wire import partition

STRATEGIES = [f"STRATEGY_{n}" for n in range(40)]


def test_writers_warm_up_their_own_strategies_and_no_others() -> None:
    settings = Settings()
    owners = [Services(settings, role="writer", writers=3, partition=k) for k in range(3)]
    owned = [[s for s in STRATEGIES if writer._owned(s)] for writer in owners]
    assert sorted(s for mine in owned for s in mine) == sorted(STRATEGIES)  # each exactly once
    assert all(owned)
    for k, mine in enumerate(owned):  # the writer that warms a strategy is the one it goes to
        assert all(partition(s, 3) == k for s in mine)
    assert all(Services(settings)._owned(s) for s in STRATEGIES)  # one writer owns all
