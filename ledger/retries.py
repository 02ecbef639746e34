"""Retrying work that another writer got to first: reload, wait a random while, try again."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from eventsourcing.persistence import IntegrityError

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_ATTEMPTS = 10


class ConflictRetriesExhausted(IntegrityError):
    """Other writers kept changing the same books; the batch was not saved."""


def back_off(attempt: int) -> None:
    """Sleep a random while, longer with each attempt."""
    # Random waits break the lockstep in which two writers keep invalidating each other.
    time.sleep(random.uniform(0, 0.005 * 2**attempt))


def retrying(attempt: Callable[[int], T], reload: Callable[[], None], what: str) -> T:
    """Run attempt(n); after a conflict (IntegrityError), reload and run it again."""
    for n in range(MAX_ATTEMPTS):
        try:
            return attempt(n)
        except IntegrityError as conflict:
            log.info("%s raced another writer (%s); reloading", what, conflict)
            reload()
            back_off(n)
    msg = f"{what} kept conflicting with another writer"
    raise ConflictRetriesExhausted(msg)
