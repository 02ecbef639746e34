"""The cyclic garbage collector's settings for the ledger's processes."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Iterator

log = logging.getLogger(__name__)

# Measured under the 21 x 4 load (bench/orders.lua, 64 connections) with gc.callbacks: with
# Python's defaults (700, 10, 10) the writer spent ~6% of its time collecting, and each full
# collection, which walks every tracked object (imported code included), stopped it for 60-95
# ms: the p99 of every order in flight. Start-up's objects are frozen out of the collector's
# sight, and young objects are collected less often, so fewer survive into older generations.
YOUNG_THRESHOLD = 20_000


def settle() -> None:
    """Freeze what start-up built and collect young objects less often, from now on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    log.debug("gc: %d objects frozen, thresholds %s", gc.get_freeze_count(), gc.get_threshold())


@contextlib.contextmanager
def fewer_collections(young: int) -> Iterator[None]:
    """Within the block, what exists already is frozen and young objects wait for `young`."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(young, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
