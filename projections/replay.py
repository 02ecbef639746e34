"""Reading order events back from the store: a paged reader, and a replay of the read models."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from eventsourcing.persistence import Tracking

from ledger.application import Ledger
from projections.fold import PlacedOrder
from projections.projection import PLACED_TOPIC
from projections.runner import open_view, projector_lock

log = logging.getLogger(__name__)


def placed_pages(app: Any, stop: int, batch: int) -> Iterator[list[PlacedOrder]]:
    """Every Order.Placed event up to sequence `stop`, from the event store, a page at a time."""
    position = 0
    while position < stop:
        notifications = app.recorder.select_notifications(
            start=position, limit=batch, stop=stop, topics=[PLACED_TOPIC], inclusive_of_start=False
        )
        if not notifications:
            return
        yield [PlacedOrder.from_event(app.mapper.to_domain_event(n), n.id) for n in notifications]
        position = notifications[-1].id


def replay(
    env: Mapping[str, str],
    url: str,
    batch: int = 10_000,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Rebuild the read models from zero; returns (orders applied, events read)."""
    with projector_lock(url, env) as lock_conn:
        if lock_conn is None:
            msg = "a running server keeps the read models: stop it before replaying"
            raise RuntimeError(msg)
        with Ledger(env=dict(env)) as ledger:
            view = open_view(env)
            try:
                top = ledger.recorder.max_notification_id() or 0
                view.reset(ledger.name)
                done = 0
                position = 0
                for orders in placed_pages(ledger, top, batch):
                    position = orders[-1].sequence
                    view.apply(orders, Tracking(ledger.name, position))
                    done += len(orders)
                    if progress is not None:
                        progress(position, top)
                if position < top:  # the log ends with events that are not orders
                    view.insert_tracking(Tracking(ledger.name, top))
                if progress is not None:
                    progress(top, top)
                log.info("replayed %d orders, store read up to %d", done, top)
                return done, top
            finally:
                view.datastore.close()
