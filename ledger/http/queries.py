"""The read API's query parameters, as pydantic models: parsed here, described in OpenAPI."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)
from starlette.datastructures import QueryParams

from ledger.domain import Outcome
from ledger.names import Name
from projections.decisions import DEFAULT_DECISIONS, MAX_DECISIONS
from projections.fold import Key
from projections.queries import (
    DEFAULT_LIMIT,
    DEFAULT_POSITIONS,
    MAX_LIMIT,
    MAX_POSITIONS,
    PAGE_BYTES,
    Filters,
    position_key,
)

INT64 = 2**63 - 1
WAIT_LIMIT = 2.0  # seconds a min_sequence read waits for the projections
Sequence = Annotated[int, Field(ge=0, le=INT64)]


class BadQuery(Exception):
    """Query parameters that are not usable; `fields` names each one and its problem."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


class Query(BaseModel):
    """Parameters every read takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_sequence: Sequence | None = Field(
        None,
        description=f"wait (at most {WAIT_LIMIT:g} s, else 503) until the read models reach"
        " this sequence",
    )


class BookQuery(Query):
    """Filters on (user, strategy, instrument)."""

    user: Name | None = Field(None, description="only this user")
    strategy: Name | None = Field(None, description="only this strategy")
    instrument: Name | None = Field(None, description="only this instrument")

    def filters(self) -> Filters:
        """The filters for the read-model queries."""
        return Filters(self.user, self.strategy, self.instrument, getattr(self, "status", None))


def _position_key(cursor: str | None) -> Key | None:
    return None if cursor is None else position_key(cursor)


class PositionsQuery(BookQuery):
    """GET /positions."""

    as_of: Sequence | None = Field(None, description="positions right after this sequence")
    limit: int = Field(DEFAULT_POSITIONS, ge=1, le=MAX_POSITIONS, description="page size")
    # A cursor on the wire, the key it stands for once parsed.
    after: Annotated[
        Key | None, BeforeValidator(_position_key), WithJsonSchema({"type": "string"})
    ] = Field(None, description="the `next` cursor of the last page")


class PnlQuery(BookQuery):
    """GET /pnl."""

    as_of: Sequence | None = Field(None, description="the trades closed up to this sequence")


class PageQuery(BookQuery):
    """A paginated read."""

    limit: int = Field(
        DEFAULT_LIMIT,
        ge=1,
        le=MAX_LIMIT,
        description=f"page size; an orders page also stops before {PAGE_BYTES // 2**20} MiB",
    )
    after: Sequence | None = Field(None, description="the `next` cursor of the last page")
    newest_first: bool = Field(
        False,
        description="`true`: the newest first (`limit=100&newest_first=true` is the latest"
        " 100); `next` then pages backwards, to older ones",
    )


class OrdersQuery(PageQuery):
    """GET /orders."""

    status: Outcome | None = Field(None, description="only orders with this outcome")


class TradesQuery(PageQuery):
    """GET /trades."""


class DecisionsQuery(Query):
    """GET /decisions."""

    order_id: Name = Field(description="the order (required)")
    limit: int = Field(DEFAULT_DECISIONS, ge=1, le=MAX_DECISIONS, description="page size")
    after: int | None = Field(
        None, ge=0, le=INT64, description="the `next` cursor of the last page"
    )


Q = TypeVar("Q", bound=BaseModel)


def parse(model: type[Q], params: QueryParams) -> Q:
    """The query as `model`, or BadQuery naming every bad parameter."""
    given: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, value in params.multi_items():
        if name in given:
            problems[name[:64]] = "given more than once"
        given[name] = value
    try:
        query = model.model_validate(given)
    except ValidationError as invalid:
        for item in invalid.errors(include_url=False, include_input=False):
            name = str(item["loc"][0])[:64] if item["loc"] else "query"
            unknown = item["type"] == "extra_forbidden"
            problems.setdefault(name, "unknown parameter" if unknown else item["msg"])
    if problems:
        raise BadQuery(problems)
    return query
