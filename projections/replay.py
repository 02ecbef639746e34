"""Reading order events back from the store: a paged reader, and a replay of the read models."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from eventsourcing.persistence import Notification, Tracking
from psycopg.sql import SQL, Identifier

from ledger.application import Ledger
from projections import roster
from projections.fold import PlacedOrder
from projections.projection import PLACED_TOPIC
from projections.runner import open_view, projector_lock
from projections.views import DECISION_BUDGET, decisions

log = logging.getLogger(__name__)


# Stored bytes read at once: an order's JSON takes 12-40 bytes per decision, so a page read
# holds about one budget of decisions before any of it is decoded.
BYTES_PER_DECISION = 32


def placed_pages(app: Any, stop: int, batch: int) -> Iterator[list[PlacedOrder]]:
    """Order.Placed events up to `stop`, in pages of at most `batch` orders and a budget."""
    # A page holds at most DECISION_BUDGET decisions, at least one order; the store is read in
    # slices of about as many bytes: memory stays bounded at any fan-out.
    budget = DECISION_BUDGET
    reader = _PageReader(app, stop, budget * BYTES_PER_DECISION)
    page: list[PlacedOrder] = []
    size = 0
    limit = batch
    position = 0
    while position < stop:
        notifications = reader.read(position, limit)
        if not notifications:
            break
        # Fewer rows than asked: the byte bound cut the slice. Scan about as far next time
        # rather than `batch` rows' worth of the log (or it was the end of the log).
        limit = min(batch, 2 * len(notifications)) if len(notifications) < limit else batch
        for notification in notifications:
            order = PlacedOrder.from_event(
                app.mapper.to_domain_event(notification), notification.id
            )
            cost = decisions(order)
            if page and (len(page) == batch or size + cost > budget):
                yield page
                page, size = [], 0
            page.append(order)
            size += cost
        position = notifications[-1].id
    if page:
        yield page


class _PageReader:
    """Reads Order.Placed notifications in slices bounded in rows and in stored bytes."""

    def __init__(self, app: Any, stop: int, most_bytes: int) -> None:
        recorder = app.recorder
        self.datastore = recorder.datastore
        self.stop = stop
        self.most_bytes = most_bytes
        # Rows are kept while the bytes before them stay under the bound: the first always is.
        # octet_length() reads a stored value's size from its header, not the value itself.
        self.statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM ("
            " SELECT notification_id, originator_id, originator_version, topic, state,"
            " sum(octet_length(state)) OVER (ORDER BY notification_id)"
            " - octet_length(state) AS before FROM {0}.{1}"
            " WHERE notification_id > %s AND notification_id <= %s AND topic = %s"
            " ORDER BY notification_id LIMIT %s) AS page"
            " WHERE before < %s ORDER BY notification_id"
        ).format(Identifier(self.datastore.schema), Identifier(recorder.events_table_name))

    def read(self, after: int, limit: int) -> list[Notification]:
        """The next slice after sequence `after`."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                self.statement,
                (after, self.stop, PLACED_TOPIC, limit, self.most_bytes),
                prepare=True,
            )
            return [
                Notification(
                    id=row["notification_id"],
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]


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
                # The roster read model whole, with the first page: book changes are few.
                books: roster.BookRows | None = roster.stored_rows(ledger, top)
                done = 0
                position = 0
                for orders in placed_pages(ledger, top, batch):
                    position = orders[-1].sequence
                    view.apply(orders, Tracking(ledger.name, position), books)
                    books = None
                    done += len(orders)
                    if progress is not None:
                        progress(position, top)
                if position < top:  # the log ends with events that are not orders
                    view.apply([], Tracking(ledger.name, top), books)
                if progress is not None:
                    progress(top, top)
                log.info("replayed %d orders, store read up to %d", done, top)
                return done, top
            finally:
                view.datastore.close()
