"""A subscription sees an event committed while it was starting, without waiting for another."""

from __future__ import annotations

import queue
import threading
from typing import Any

from eventsourcing.postgres import PostgresSubscription

from ledger.answers import OrderRequest
from ledger.application import Ledger
from ledger.domain import Position
from ledger.overrides.subscription import LedgerSubscription

WAIT = 10.0  # seconds a delivery may take before the test calls it lost


def gated(base: type[PostgresSubscription]) -> type[PostgresSubscription]:
    """`base`, whose LISTEN waits until the test lets it: after the first read of the store."""

    class Gated(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.pulled = threading.Event()
            self.gate = threading.Event()
            super().__init__(*args, **kwargs)

        def _pull(self) -> None:
            super()._pull()
            self.pulled.set()

        def _listen(self) -> None:
            self.gate.wait(WAIT)
            super()._listen()

    return Gated


def first_delivery(ledger: Ledger, kind: type[PostgresSubscription]) -> tuple[int, int | None]:
    """Commit an order between a subscription's first read and its LISTEN; what it then sees."""
    top = ledger.last_sequence()
    subscription: Any = gated(kind)(ledger.recorder, gt=top)
    delivered: queue.Queue[int] = queue.Queue()

    def consume() -> None:
        for notification in subscription:
            delivered.put(notification.id)

    consumer = threading.Thread(target=consume, daemon=True)
    with subscription:
        consumer.start()
        assert subscription.pulled.wait(WAIT)
        ledger.place_orders([OrderRequest("STRATEGY_B", "ACC", Position.BUY, "race-1")])
        committed = ledger.last_sequence()
        subscription.gate.set()  # LISTEN now: the order's NOTIFY went to nobody
        try:
            seen: int | None = delivered.get(timeout=WAIT)
        except queue.Empty:
            seen = None
        subscription.stop()
    consumer.join(WAIT)
    return committed, seen


def test_an_event_committed_before_listen_took_effect_is_delivered(ledger: Ledger) -> None:
    committed, seen = first_delivery(ledger, LedgerSubscription)
    assert seen is not None, "the event committed while the subscription started was not read"
    assert seen <= committed
