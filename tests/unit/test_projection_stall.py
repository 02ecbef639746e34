"""A projection behind the store that stops moving is reported stalled, on an injected clock."""

from __future__ import annotations

from ledger.bootstrap import STALL_SECONDS, Services
from ledger.settings import Settings


def services() -> Services:
    """Services not started: projection_stalled() needs no database."""
    return Services(Settings())


def test_a_projection_behind_and_not_moving_is_stalled_after_the_window() -> None:
    running = services()
    assert not running.projection_stalled(302, 0, now=100.0)
    assert not running.projection_stalled(302, 0, now=100.0 + STALL_SECONDS - 0.1)
    assert running.projection_stalled(302, 0, now=100.0 + STALL_SECONDS)
    assert running.projection_stalled(400, 0, now=500.0)  # new orders do not hide it


def test_a_projection_that_moves_is_not_stalled() -> None:
    running = services()
    for step in range(10):
        # Behind all the time, but a little further each look: timed from its last move.
        assert not running.projection_stalled(1000, step, now=step * STALL_SECONDS)
    assert not running.projection_stalled(1000, 9, now=9.5 * STALL_SECONDS)
    assert running.projection_stalled(1000, 9, now=10 * STALL_SECONDS)


def test_a_projection_caught_up_is_never_stalled() -> None:
    running = services()
    assert not running.projection_stalled(50, 50, now=0.0)
    assert not running.projection_stalled(50, 50, now=1000.0)
    # A lag seen after a long quiet spell is timed from when it is first seen, not from
    # the last time the position moved.
    assert not running.projection_stalled(51, 50, now=2000.0)
    assert not running.projection_stalled(50, 50, now=2000.0 + STALL_SECONDS)
    assert not running.projection_stalled(52, 50, now=2001.0 + STALL_SECONDS)


def test_the_default_clock_is_monotonic_time() -> None:
    running = services()
    assert not running.projection_stalled(10, 0)
    assert not running.projection_stalled(10, 0)  # far less than STALL_SECONDS later
