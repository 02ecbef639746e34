"""The projection: the ledger's events, one case each, turned into rows of the read models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from eventsourcing.utils import get_topic

from ledger.domain import Book, Order, Roster
from projections.fold import PlacedOrder
from projections.views import LedgerView

# Every event the ledger stores, and whether the projection reads it. A test checks that no
# event class of the domain is missing here, so a new event is a decision, not an accident.
READ = "read"
SKIPPED = "skipped"
EVENTS: dict[type[Any], str] = {
    Order.Placed: READ,  # type: ignore[attr-defined]
    # Position events are committed just before their order's Placed event, which carries
    # the same decisions: the projection never needs them.
    Book.PositionOpened: SKIPPED,  # type: ignore[attr-defined]
    Book.PositionClosed: SKIPPED,  # type: ignore[attr-defined]
    # Profile changes are read only to move the tracking position, so the lag is exact
    # after an import too.
    Book.StrategyTakenUp: READ,  # type: ignore[attr-defined]
    Book.InstrumentsChanged: READ,  # type: ignore[attr-defined]
    Book.StrategyDropped: READ,  # type: ignore[attr-defined]
    Roster.Started: READ,  # type: ignore[attr-defined]
    Roster.BooksAdded: READ,  # type: ignore[attr-defined]
}
PLACED_TOPIC = get_topic(Order.Placed)  # type: ignore[attr-defined]


class LedgerProjection(Projection[LedgerView]):
    """Turns the ledger's events into rows of the read tables."""

    name = "ledger_views"
    topics = tuple(get_topic(cls) for cls, use in EVENTS.items() if use == READ)

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """One event and its tracking record, in one transaction."""
        self.process_events([(domain_event, tracking)])

    def process_events(self, batch: Sequence[tuple[Any, Tracking]]) -> None:
        """Many events in one view transaction, tracked at the last of them."""
        orders: list[PlacedOrder] = []
        for domain_event, tracking in batch:
            match domain_event:
                case Order.Placed():  # type: ignore[attr-defined]
                    orders.append(PlacedOrder.from_event(domain_event, tracking.notification_id))
                case _:
                    pass  # profile changes: nothing to show yet, only the position moves
        self.view.apply(orders, batch[-1][1])
