"""The projector's loop: under a steady flow a batch waits for more, never longer than the
window; a projection with a decoder reads the stored events itself."""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import Notification, Tracking

from ledger.overrides.storage import BatchingProjectionRunner
from ledger.settings import Settings, SettingsError


class Pages:
    """What the loop reads of a ListenNotifySubscription: nothing buffered beyond the next."""

    def __init__(self) -> None:
        self._notifications: list[Any] = []
        self._notifications_index = 0
        self._notifications_queue: queue.Queue[Any] = queue.Queue()


class Events:
    """A subscription handing out one event at a time, then stopping."""

    def __init__(self, count: int) -> None:
        self.subscription = Pages()
        self._items: Iterator[tuple[str, int]] = iter([(f"event {n}", n) for n in range(count)])

    def __iter__(self) -> Events:
        return self

    def __next__(self) -> tuple[str, int]:
        return next(self._items)


class Stopping(threading.Event):
    """The runner's stop event, recording the waits asked of it instead of waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return False


class Projection:
    """Records the batches it is given."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.batches: list[int] = []

    def process_events(self, batch: list[Any]) -> None:
        self.batches.append(len(batch))


def run(window: float, events: int) -> tuple[Projection, Stopping]:
    projection, stopping, owner = Projection(window), Stopping(), Projection(0)
    loop: Any = BatchingProjectionRunner._process_events_loop
    loop(Events(events), projection, stopping, weakref.ref(owner))
    return projection, stopping


def test_without_a_window_each_batch_starts_at_once() -> None:
    projection, stopping = run(0.0, 5)
    assert projection.batches == [1, 1, 1, 1, 1]
    assert stopping.waits == []
    assert stopping.is_set()  # the loop ended: the subscription stopped


def test_with_a_window_a_batch_right_after_another_waits_at_most_the_window() -> None:
    projection, stopping = run(0.5, 5)
    assert projection.batches == [1, 1, 1, 1, 1]
    # The first batch comes after a quiet spell and starts at once; each later one waits
    # what is left of the window since the last one was written.
    assert len(stopping.waits) == 4
    assert all(wait is not None and 0 < wait <= 0.5 for wait in stopping.waits)


def test_the_window_setting_is_seconds_up_to_one() -> None:
    assert Settings.from_env({"LEDGER_PROJECTION_WINDOW": "0.1"}).projection_window == 0.1
    assert Settings.from_env({}).projection_window == 0
    with pytest.raises(SettingsError):
        Settings.from_env({"LEDGER_PROJECTION_WINDOW": "2"})


class StoredPages(Pages):
    """Stored events as a ListenNotifySubscription hands them out, then a stop."""

    def __init__(self, ids: list[int]) -> None:
        super().__init__()
        self._ids = iter(ids)

    def __next__(self) -> Any:
        return Notification(
            id=next(self._ids),
            originator_id=UUID(int=1),
            originator_version=1,
            topic="t",
            state=b"",
        )


class Stored(Events):
    """An ApplicationSubscription over stored events; its own decoding is not to be used."""

    name = "app"
    mapper = "the application's mapper"

    def __init__(self, ids: list[int]) -> None:
        super().__init__(0)
        self.subscription = StoredPages(ids)

    def __next__(self) -> tuple[str, int]:
        raise AssertionError("the projection's decoder reads the stored events")


class Decoding(Projection):
    """Reads stored events with a decoder of its own."""

    def __init__(self) -> None:
        super().__init__(0.0)
        self.items: list[Any] = []
        self.mappers: list[Any] = []

    def decoder(self, mapper: Any) -> Any:
        self.mappers.append(mapper)
        return lambda notification: f"read {notification.id}"

    def process_events(self, batch: list[Any]) -> None:
        super().process_events(batch)
        self.items.extend(batch)


def test_a_projection_with_a_decoder_reads_the_stored_events_itself() -> None:
    projection, owner = Decoding(), Projection(0)
    loop: Any = BatchingProjectionRunner._process_events_loop
    loop(Stored([3, 5]), projection, Stopping(), weakref.ref(owner))
    assert projection.mappers == ["the application's mapper"]
    assert projection.items == [
        ("read 3", Tracking(application_name="app", notification_id=3)),
        ("read 5", Tracking(application_name="app", notification_id=5)),
    ]


class Undecodable(Decoding):
    """A projection whose decoder cannot be built."""

    def decoder(self, mapper: Any) -> Any:
        raise LookupError(mapper)


def test_a_decoder_that_cannot_be_built_stops_the_runner_with_its_error() -> None:
    stopping, owner = Stopping(), Projection(0)
    loop: Any = BatchingProjectionRunner._process_events_loop
    loop(Stored([3]), Undecodable(), stopping, weakref.ref(owner))
    assert isinstance(getattr(owner, "_thread_error", None), LookupError)
    assert stopping.is_set()  # the runner sees the error instead of waiting for events
