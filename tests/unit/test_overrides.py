"""What the fenced overrides take from libraries' private parts still exists."""

from __future__ import annotations

from ledger import overrides


def test_nothing_the_overrides_rely_on_has_moved() -> None:
    assert overrides.missing() == []


def test_pools_retry_a_lost_database_every_second() -> None:
    from psycopg_pool.base import AttemptWithBackoff

    from ledger.overrides import storage

    storage.steady_reconnects()
    attempt = AttemptWithBackoff(timeout=300)
    delays = []
    for now in range(10):
        attempt.update_delay(float(now))
        delays.append(attempt.delay)
    assert all(0.8 <= delay <= 1.2 for delay in delays), delays
