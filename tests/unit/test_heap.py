"""The collector's settings for a long-running process."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ledger import heap


@pytest.fixture
def restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored")
def test_settle_freezes_start_up_and_collects_young_objects_less_often() -> None:
    built_at_start = [object() for _ in range(10)]
    _, older, oldest = gc.get_threshold()
    heap.settle()
    assert gc.get_freeze_count() > len(built_at_start)
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, older, oldest)
    assert heap.YOUNG_THRESHOLD > 700  # Python's default, which cost the writer its p99


def test_fewer_collections_holds_for_the_block_only() -> None:
    before = gc.get_threshold()
    with heap.fewer_collections(50_000):
        assert gc.get_threshold() == (50_000, *before[1:])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
