"""Fault injection for tests: SIGKILL this process at a named point (LEDGER_FAULTS)."""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger(__name__)

POINTS = ("before_commit", "after_commit", "projection_batch")
_counts: dict[str, int] = {}
_armed: dict[str, int] = {}
_lock = threading.Lock()


def install(spec: str | None) -> None:
    """Arm the points of a spec like "after_commit=3,projection_batch=2" (empty: none)."""
    _armed.clear()
    _counts.clear()
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        point, _, nth = item.partition("=")
        if point not in POINTS or not nth.isdigit():
            msg = f"LEDGER_FAULTS: {item!r} is not one of {POINTS} with =N"
            raise ValueError(msg)
        _armed[point] = int(nth)
    if _armed:
        log.warning("fault injection armed: %s", _armed)


def hit(point: str) -> None:
    """Die here, hard, on the armed pass through this point."""
    if point not in _armed:
        return
    with _lock:
        _counts[point] = _counts.get(point, 0) + 1
        if _counts[point] == _armed[point]:
            log.warning("fault injection: SIGKILL at %s", point)
            os.kill(os.getpid(), signal.SIGKILL)
