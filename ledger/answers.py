"""The shapes the ledger takes and answers with, each written once: orjson renders them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, NotRequired, Self

from pydantic.json_schema import SkipJsonSchema
from typing_extensions import TypeAliasType, TypedDict

from ledger.amounts import canonical
from ledger.domain import Order, Outcome, Position, Reason, Rejection, order_numbers
from ledger.user_answers import Entry

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
    quantity: int  # 1 when not given (and for a SELL without one: it closed what was open)
    price: str | None  # an exact decimal, as a string; null when not given
    # Whether a SELL gave its QUANTITY (None: a BUY, or not recorded), for is_for only: not
    # in the answer's JSON (orjson skips a dataclass field named "_..."), nor its schema.
    _quantity_given: Annotated[bool | None, SkipJsonSchema()] = field(default=None, kw_only=True)

    @classmethod
    def of(cls, order: Order | Any, sequence: int | None, **more: Any) -> Self:
        """The answer recorded by an Order (or its Placed event), at its place in the store."""
        quantity, price, _ = order_numbers(order)
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
            quantity=quantity,
            price=price,
            _quantity_given=getattr(order, "quantity_given", None),
            **more,
        )

    def is_for(self, request: OrderRequest) -> bool:
        """Whether a request with this answer's ORDER_ID asked for the same order."""
        price = None if request.price is None else canonical(request.price)
        given = self._quantity_given
        if given is not None and given != request.quantity_given_if_sell:
            return False  # "close what is open" and "close exactly 1" are different orders
        return (self.strategy, self.instrument, self.position, self.quantity, self.price) == (
            request.strategy,
            request.instrument,
            request.position,
            request.quantity,
            price,
        )


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A well-formed order as the client sent it."""

    strategy: str
    instrument: str
    position: Position
    order_id: str | None = None
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    quantity: int = 1
    price: Decimal | None = None
    # Whether QUANTITY was given: a SELL without one closes whatever quantity is open.
    quantity_given: bool = False

    @property
    def asked_quantity(self) -> int | None:
        """The quantity the rules check: None when none was given (a quantity not 1 counts)."""
        return self.quantity if self.quantity_given or self.quantity != 1 else None

    @property
    def quantity_given_if_sell(self) -> bool | None:
        """For a SELL, whether it gave a QUANTITY (the rules check it); None for a BUY."""
        return self.asked_quantity is not None if self.position is Position.SELL else None


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
    quantity: str  # booked: the BUY's quantity times the user's multiplier, an exact decimal
    entry_price: str | None  # the BUY's price; null when it gave none


@dataclass(frozen=True, slots=True)
class Trade:
    """A position closed by a SELL: the BUY that opened it and the SELL that closed it."""

    id: int  # its place in the trades' log: `after` for the trades closed since
    user: str
    strategy: str
    instrument: str
    buy_order_id: str
    sell_order_id: str
    opened_at: datetime
    closed_at: datetime
    quantity: str  # the position's booked quantity: a SELL closes it whole
    entry_price: str | None  # the BUY's price
    exit_price: str | None  # the SELL's price
    realised_pnl: str | None  # (exit - entry) x quantity, exact; null when a price is unknown


@dataclass(frozen=True, slots=True)
class PositionChange:
    """A position opened or closed for one user: the stream's `position` event."""

    user: str
    strategy: str
    instrument: str
    order_id: str
    action: Literal["opened", "closed"]
    at: datetime
    quantity: str  # booked (opened) or closed, an exact decimal
    price: str | None  # the entry price when opened, the exit price when closed
    entry_price: str | None = None  # closed only
    realised_pnl: str | None = None  # closed only: (exit - entry) x quantity


@dataclass(frozen=True, slots=True)
class ProfileChange:
    """A user took up, changed or dropped a strategy: the stream's `profile` event."""

    user: str
    strategy: str
    change: Literal["taken_up", "changed", "dropped"]  # taken up again after a drop: changed
    instruments: list[str]  # empty when dropped
    multiplier: str  # an exact decimal: booked quantity = order quantity x this


@dataclass(frozen=True, slots=True)
class Positions:
    """A page of open positions, in (user, strategy, instrument) order; `next` is the cursor
    of the following page."""

    positions: list[OpenPosition]
    next: str | None


@dataclass(frozen=True, slots=True)
class PnlLine:
    """Realised P&L of a set of closed trades."""

    realised_pnl: str  # an exact decimal, the sum over priced trades; "0" when none is priced
    trades: int
    winners: int  # realised_pnl > 0
    losers: int  # realised_pnl < 0
    unpriced: int  # entry or exit price unknown: counted here, not in the sum, winners, losers


@dataclass(frozen=True, slots=True)
class UserPnl:
    """One user's realised P&L (the fields of PnlLine)."""

    user: str
    realised_pnl: str
    trades: int
    winners: int
    losers: int
    unpriced: int


@dataclass(frozen=True, slots=True)
class StrategyPnl:
    """One strategy's realised P&L, all its users together (the fields of PnlLine)."""

    strategy: str
    realised_pnl: str
    trades: int
    winners: int
    losers: int
    unpriced: int


@dataclass(frozen=True, slots=True)
class Pnl:
    """Realised P&L of the closed trades, per user, per strategy and in all (GET /pnl)."""

    by_user: list[UserPnl]
    by_strategy: list[StrategyPnl]
    total: PnlLine


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
# A strategy with a multiplier other than 1 is {"instruments": [...], "multiplier": "3"}.
Profiles = TypeAliasType("Profiles", dict[str, dict[str, Entry]])
