"""The shapes the ledger takes and answers with, each written once: orjson renders them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, Self

from typing_extensions import TypeAliasType, TypedDict

from ledger.domain import Order, Outcome, Position, Reason, Rejection

# Plain dataclasses, not pydantic models: orjson serialises them natively, which matters on
# the write path (one answer per order); pydantic's TypeAdapter still derives their schemas.


@dataclass(frozen=True, slots=True)
class OrderAnswer:
    """The decision on one order, as POST /order returns it."""

    RESPONSE: Outcome
    order_id: str
    sequence: int | None
    strategy: str
    instrument: str
    position: Position
    accepted_for: list[str]
    rejected_for: list[Rejection]
    reason: Reason | None

    @classmethod
    def of(cls, order: Order | Any, sequence: int | None, **more: Any) -> Self:
        """The answer recorded by an Order (or its Placed event), at its place in the store."""
        return cls(
            RESPONSE=Outcome.of(order.accepted_for),
            order_id=order.order_id,
            sequence=sequence,
            strategy=order.strategy,
            instrument=order.instrument,
            position=Position(order.position),
            accepted_for=list(order.accepted_for),
            rejected_for=list(order.rejected_for),
            reason=Reason(order.reason) if order.reason else None,
            **more,
        )

    def is_for(self, strategy: str, instrument: str, position: Position) -> bool:
        """Whether a request with this answer's ORDER_ID asked for the same order."""
        return (self.strategy, self.instrument, self.position) == (strategy, instrument, position)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A well-formed order as the client sent it."""

    strategy: str
    instrument: str
    position: Position
    order_id: str | None = None
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """The answer to one request: the order's record, or a refusal of a reused ORDER_ID."""

    answer: OrderAnswer
    reused_id: bool = False  # the ORDER_ID belongs to a different order
    stored: bool = False  # this request stored the order (not an answer given again)


@dataclass(frozen=True, slots=True)
class LoggedOrder(OrderAnswer):
    """An order of the log: its answer and when it was received."""

    received_at: datetime


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """A position opened by a BUY and not yet closed."""

    user: str
    strategy: str
    instrument: str
    order_id: str
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class Trade:
    """A position closed by a SELL: the BUY that opened it and the SELL that closed it."""

    user: str
    strategy: str
    instrument: str
    buy_order_id: str
    sell_order_id: str
    opened_at: datetime
    closed_at: datetime


@dataclass(frozen=True, slots=True)
class PositionChange:
    """A position opened or closed for one user: the stream's `position` event."""

    user: str
    strategy: str
    instrument: str
    order_id: str
    action: Literal["opened", "closed"]
    at: datetime


@dataclass(frozen=True, slots=True)
class ProfileChange:
    """A user took up, changed or dropped a strategy: the stream's `profile` event."""

    user: str
    strategy: str
    change: Literal["taken_up", "changed", "dropped"]
    instruments: list[str]  # empty when dropped


@dataclass(frozen=True, slots=True)
class Positions:
    """Open positions, in (user, strategy, instrument) order."""

    positions: list[OpenPosition]


@dataclass(frozen=True, slots=True)
class OrdersPage:
    """A page of the order log; `next` is the cursor of the following page."""

    orders: list[LoggedOrder]
    next: str | None


@dataclass(frozen=True, slots=True)
class TradesPage:
    """A page of closed trades; `next` is the cursor of the following page."""

    trades: list[Trade]
    next: str | None


@dataclass(frozen=True, slots=True)
class Decision:
    """The decision on one order for one user: booked, or refused and why."""

    user: str
    outcome: Outcome
    reason: Reason | None


@dataclass(frozen=True, slots=True)
class DecisionsPage:
    """A page of one order's decisions, accepted users first; `next` is the following cursor."""

    order_id: str
    accepted: int  # how many users the order was booked for, in all
    rejected: int  # how many users it was refused for, in all
    decisions: list[Decision]
    next: str | None


@dataclass(frozen=True, slots=True)
class ProjectionHealth:
    """How far one projection has read the store."""

    processed: int
    lag: int
    runner: str
    alive: bool
    stalled: bool  # behind the store and not advancing for a while (see Services)


@dataclass(frozen=True, slots=True)
class Health:
    """The service is up and its database answers."""

    status: Literal["ok", "degraded"]  # degraded: the projection is stalled; reads lag
    database: Literal["ok"]
    sequence: int
    queued: int
    projections: dict[str, ProjectionHealth]


@dataclass(frozen=True, slots=True)
class Unhealthy:
    """The database does not answer."""

    status: Literal["unavailable"]
    database: Literal["unreachable", "writes failing"]
    detail: str


class ErrorBody(TypedDict):
    """Every 4xx and 5xx answer: what went wrong, and where it helps, which fields or order."""

    error: str
    fields: NotRequired[dict[str, str]]
    retry: NotRequired[str]
    order: NotRequired[OrderAnswer]  # the first answer, as the writer rendered it
    order_id: NotRequired[str]


# Named, so the OpenAPI document calls it Profiles: {"User": {"STRATEGY": ["INSTRUMENT", ...]}}.
Profiles = TypeAliasType("Profiles", dict[str, dict[str, list[str]]])
