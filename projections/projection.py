"""The projection: the ledger's events, one case each, turned into rows of the read models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import Notification, Tracking
from eventsourcing.projection import Projection
from eventsourcing.utils import get_topic

from ledger.domain import Book, Order, Roster
from projections.decoding import placed_decoder
from projections.fold import PlacedOrder, decisions
from projections.roster import BookRows
from projections.views import DECISION_BUDGET, LedgerView

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
    # Book changes keep the roster read model (projections/roster.py); roster events are
    # read only to move the tracking position, so the lag is exact after any change.
    Book.StrategyTakenUp: READ,  # type: ignore[attr-defined]
    Book.InstrumentsChanged: READ,  # type: ignore[attr-defined]
    Book.StrategyDropped: READ,  # type: ignore[attr-defined]
    Roster.Started: READ,  # type: ignore[attr-defined]
    Roster.BooksAdded: READ,  # type: ignore[attr-defined]
    Roster.FileImported: READ,  # type: ignore[attr-defined]
}
PLACED_TOPIC = get_topic(Order.Placed)  # type: ignore[attr-defined]


class LedgerProjection(Projection[LedgerView]):
    """Turns the ledger's events into rows of the read tables."""

    name = "ledger_views"
    topics = tuple(get_topic(cls) for cls, use in EVENTS.items() if use == READ)
    budget = DECISION_BUDGET  # most decisions written in one view transaction

    @staticmethod
    def cost(domain_event: Any) -> int:
        """What an event adds to a batch: an order's decisions, 1 for any other event."""
        if isinstance(domain_event, (PlacedOrder, Order.Placed)):  # type: ignore[attr-defined]
            return max(1, decisions(domain_event))
        return 1

    @staticmethod
    def decoder(mapper: Any) -> Callable[[Notification], Any]:
        """How the batching runner reads a stored event for process_events: an order straight
        into its PlacedOrder, any other event as its domain event."""
        # Without the event object an order costs ~6 µs to read instead of ~16 (its fields
        # are taken from the stored JSON: projections/decoding.py).
        placed, to_domain_event = placed_decoder(mapper), mapper.to_domain_event

        def decode(notification: Notification) -> Any:
            if notification.topic == PLACED_TOPIC:
                return placed(notification)
            return to_domain_event(notification)

        return decode

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """One event (from the stock runner) and its tracking record, in one transaction."""
        if isinstance(domain_event, Order.Placed):  # type: ignore[attr-defined]
            # What decoder() reads for the batching runner.
            domain_event = PlacedOrder.from_event(domain_event, tracking.notification_id)
        self.process_events([(domain_event, tracking)])

    def process_events(self, batch: Sequence[tuple[Any, Tracking]]) -> None:
        """Many events as decoder() reads them, in view transactions of at most `budget`
        decisions (at least one order)."""
        # Each transaction is tracked at the last event it covers: a restart resumes there.
        orders: list[PlacedOrder] = []
        books = BookRows()  # the roster read model: each book's last state in the batch
        size = 0
        last: Tracking | None = None
        for item, tracking in batch:
            match item:
                case PlacedOrder() as order:
                    if orders and last is not None and size + decisions(order) > self.budget:
                        self.view.apply(orders, last, books)
                        orders, size, books = [], 0, BookRows()
                    orders.append(order)
                    size += decisions(order)
                case _:
                    books.add(item, tracking.notification_id)  # roster events: none
            last = tracking
        self.view.apply(orders, batch[-1][1], books)
