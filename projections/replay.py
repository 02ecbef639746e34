"""Reading order events back from the store: a paged reader, and a replay of the read models."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from eventsourcing.persistence import Notification, Tracking
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from ledger import heap
from ledger.application import Ledger
from projections import roster
from projections.decoding import placed_decoder
from projections.fold import PlacedOrder, decisions
from projections.projection import PLACED_TOPIC
from projections.runner import open_view, projector_lock
from projections.views import DECISION_BUDGET
from projections.writes import Writes

log = logging.getLogger(__name__)
_T = TypeVar("_T")


# Stored bytes read at once: an order's JSON takes 12-40 bytes per decision and ~400 more, so
# a read holds at most a few budgets of decisions before any of it is decoded.
READ_BYTES = 4 << 20


def placed_pages(app: Any, stop: int, batch: int) -> Iterator[list[PlacedOrder]]:
    """Order.Placed events up to `stop`, in pages of at most `batch` orders and a budget."""
    # A page holds at most DECISION_BUDGET decisions, at least one order; the store is read in
    # slices of at most READ_BYTES, the next one while this one is decoded: memory stays
    # bounded at any fan-out.
    budget = DECISION_BUDGET
    page: list[PlacedOrder] = []
    size = 0
    decode = placed_decoder(app.mapper)
    for notifications in _ahead(_slices(_PageReader(app, stop, READ_BYTES), batch)):
        for notification in notifications:
            order = decode(notification)
            cost = decisions(order)
            if page and (len(page) == batch or size + cost > budget):
                yield page
                page, size = [], 0
            page.append(order)
            size += cost
    if page:
        yield page


def _slices(reader: _PageReader, batch: int) -> Iterator[list[Notification]]:
    """The reader's slices in order, of at most `batch` rows each."""
    limit = batch
    position = 0
    while position < reader.stop:
        notifications, position, cut = reader.read(position, limit)
        # Cut by the byte bound: scan about as many rows next time rather than `batch` rows'
        # worth of the log.
        limit = min(batch, 2 * len(notifications)) if cut else batch
        if notifications:
            yield notifications


def _ahead(items: Iterator[_T]) -> Iterator[_T]:
    """`items`, each made in a thread while the one before is used: at most one ahead."""
    # Reading the store, decoding and folding are Python's work or PostgreSQL's, writing the
    # view mostly PostgreSQL's, with the GIL released: on two cores they overlap.
    with ThreadPoolExecutor(1, thread_name_prefix="replay-ahead") as pool:
        pending = pool.submit(next, items, None)
        while (item := pending.result()) is not None:
            pending = pool.submit(next, items, None)
            yield item


class _PageReader:
    """Reads Order.Placed notifications in slices bounded in rows, in stored bytes, in range."""

    def __init__(self, app: Any, stop: int, most_bytes: int) -> None:
        recorder = app.recorder
        self.datastore = recorder.datastore
        self.stop = stop
        self.most_bytes = most_bytes
        self.density = 4.0  # sequence numbers per order, as last read
        # The innermost select is bounded in range and in rows, so PostgreSQL never sorts more
        # than a page (with the window over the whole range, it sorted the rest of the log on
        # disk at every read: quadratic). Of its rows, those are kept while the bytes before
        # them stay under the bound, the first always; octet_length() reads a stored value's
        # size from its header, not the value itself. `found` tells a cut page from a range
        # that held fewer orders.
        self.statement = SQL(
            "SELECT notification_id, originator_id, originator_version, state, found FROM ("
            " SELECT *, sum(octet_length(state)) OVER (ORDER BY notification_id)"
            " - octet_length(state) AS before, count(*) OVER () AS found FROM ("
            "  SELECT notification_id, originator_id, originator_version, state FROM {0}.{1}"
            "  WHERE notification_id > %s AND notification_id <= %s AND topic = %s"
            "  ORDER BY notification_id LIMIT %s) AS slice) AS page"
            " WHERE before < %s ORDER BY notification_id"
        ).format(Identifier(self.datastore.schema), Identifier(recorder.events_table_name))

    def read(self, after: int, limit: int) -> tuple[list[Notification], int, bool]:
        """The next slice after sequence `after`: (its notifications, read up to, cut short)."""
        # The range scanned is what should hold `limit` orders at the density last seen.
        upper = min(self.stop, after + int(limit * self.density) + 64)
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(
                self.statement,
                (after, upper, PLACED_TOPIC, limit, self.most_bytes),
                prepare=True,
            )
            rows = curs.fetchall()
        notifications = [
            Notification(
                id=row[0],
                originator_id=row[1],
                originator_version=row[2],
                topic=PLACED_TOPIC,
                state=bytes(row[3]),
            )
            for row in rows
        ]
        found = rows[0][4] if rows else 0
        if found == 0:
            self.density *= 2  # no order in the range: look wider
            return notifications, upper, False
        cut = len(rows) < found
        if cut or found == limit:  # read up to the last row, the range may hold more
            upper = rows[-1][0]
        self.density = max(1.0, (upper - after) / len(rows))
        return notifications, upper, cut


def _folded(pages: Iterator[list[PlacedOrder]]) -> Iterator[tuple[int, int, Writes]]:
    """Each page's (orders, last sequence, rows to write)."""
    for orders in pages:
        yield len(orders), orders[-1].sequence, Writes.of(orders)


def replay(
    env: Mapping[str, str],
    url: str,
    batch: int = 10_000,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Rebuild the read models from zero; returns (orders applied, events read)."""
    # A page holds ~10^5 containers for a while: with the default thresholds the collector
    # walks them again and again (a quarter of replay's CPU, measured). Replay's values hold
    # no cycles.
    with projector_lock(url, env) as lock_conn, heap.fewer_collections(100_000):
        if lock_conn is None:
            msg = "a running server keeps the read models: stop it before replaying"
            raise RuntimeError(msg)
        with Ledger(env=dict(env)) as ledger:
            view = open_view(env)
            try:
                top = ledger.recorder.max_notification_id() or 0
                view.reset(ledger.name)
                # Should the replay stop half way, the next start creates what is missing.
                view.drop_read_indexes()
                # The roster read model whole, with the first page: book changes are few.
                books: roster.BookRows | None = roster.stored_rows(ledger, top)
                done = 0
                position = 0
                for count, position, writes in _ahead(_folded(placed_pages(ledger, top, batch))):
                    view.write(writes, Tracking(ledger.name, position), books)
                    books = None
                    done += count
                    if progress is not None:
                        progress(position, top)
                if position < top:  # the log ends with events that are not orders
                    view.apply([], Tracking(ledger.name, top), books)
                view.create_read_indexes()
                if progress is not None:
                    progress(top, top)
                log.info("replayed %d orders, store read up to %d", done, top)
                return done, top
            finally:
                view.datastore.close()
