"""Request shapes of the users-and-strategies API: path names, bodies and query parameters."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, WithJsonSchema
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Scope

from ledger import amounts
from ledger.http.queries import Query
from ledger.names import NOT_RESERVED, PATTERN, Name, name_problem


class Invalid(Exception):
    """A request part that is not usable; `fields` names each problem (answered 422)."""

    def __init__(self, message: str, fields: dict[str, str]) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


class NamedRoute(Route):
    """A route whose {name} parameters are matched in the raw path, so a name may hold "/"."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        raw = scope.get("raw_path")
        if scope["type"] != "http" or raw is None or scope.get("root_path"):
            return super().matches(scope)
        # Percent-encoded, a "/" inside a name is %2F and cannot split the path.
        match, child = super().matches({**scope, "path": raw.decode("latin-1")})
        if match is not Match.NONE:
            child["path_params"] = {
                k: unquote(v, errors="surrogateescape") for k, v in child["path_params"].items()
            }
        return match, child


def path_names(request: Request, *names: str) -> list[str]:
    """The named path parameters, each checked by the name rule (Invalid names them)."""
    values = [request.path_params[name] for name in names]
    problems = {n: p for n, v in zip(names, values, strict=True) if (p := name_problem(v))}
    if problems:
        raise Invalid("bad name in the path", problems)
    return values


class UserPath(BaseModel):
    """The path parameter of /users/{user}."""

    user: Name


class StrategyPath(BaseModel):
    """The path parameter of /strategies/{strategy}."""

    strategy: Name


class BookPath(UserPath, StrategyPath):
    """The path parameters of /users/{user}/strategies/{strategy}."""


class UsersQuery(Query):
    """GET /users."""

    counts: bool = Field(
        False,
        description='each user as {"strategies": {...}, "open_positions": n} instead of the'
        " profile file's shape",
    )


class Instruments(BaseModel):
    """PUT /users/{user}/strategies/{strategy}: the strategy's instruments for that user."""

    model_config = ConfigDict(strict=True, extra="forbid")

    instruments: list[Name] = Field(description="instrument names; repeats are dropped")
    multiplier: Annotated[
        Decimal | None,
        WithJsonSchema({"anyOf": [amounts.POSITIVE_DECIMAL, {"type": "null"}]}),
    ] = Field(
        None,
        gt=0,
        max_digits=amounts.INTEGER_DIGITS + amounts.FRACTION_DIGITS,
        decimal_places=amounts.FRACTION_DIGITS,
        description="a user's booked quantity is the order's times this (default 1); a JSON"
        " number (read exactly) or a string",
    )


def _names_only(schema: dict[str, Any]) -> None:
    # pydantic puts the name rule of a key in patternProperties, which lets other keys through:
    # keys must match it (a user or strategy name), at both levels.
    for level in (schema, schema["patternProperties"][PATTERN]):
        level["additionalProperties"] = False
        level["propertyNames"] = {
            **level.get("propertyNames", {}),
            "pattern": PATTERN,
            "not": NOT_RESERVED,
        }


class ScaledStrategy(BaseModel):
    """A strategy with a multiplier: its instruments, and the booked quantity's factor."""

    model_config = ConfigDict(extra="forbid")

    instruments: list[Name]
    multiplier: Annotated[Decimal, WithJsonSchema(amounts.POSITIVE_DECIMAL)] = Field(
        gt=0, description="a JSON number or a string; default 1"
    )


class ProfilesDocument(RootModel[dict[Name, dict[Name, list[Name] | ScaledStrategy]]]):
    """POST /profiles: a whole profile document, the file's shape (parsed by ledger.profiles)."""

    model_config = ConfigDict(json_schema_extra=_names_only)


class ProfilesQuery(BaseModel):
    """POST /profiles."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dry_run: bool = Field(False, description="answer the differences, write nothing")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = {key[:64]: "given more than once" for key in keys if keys.count(key) > 1}
    if repeated:
        raise Invalid("malformed body", repeated)
    return dict(pairs)


def instruments(raw: bytes) -> tuple[list[str], str]:
    """The instruments (first of each kept) and multiplier of a PUT body; Invalid if wrong."""
    try:
        data = json.loads(raw, object_pairs_hook=_pairs, parse_float=Decimal)
    except (ValueError, RecursionError) as bad:
        raise Invalid("body is not valid JSON", {"body": str(bad)[:200]}) from None
    multiplier = amounts.ONE
    if isinstance(data, dict) and data.get("multiplier") is not None:
        try:
            multiplier = amounts.decimal(data["multiplier"])
        except amounts.AmountError as bad:
            raise Invalid("malformed body", {"multiplier": str(bad)}) from None
        data = {**data, "multiplier": Decimal(multiplier)}
    try:
        body = Instruments.model_validate(data)
    except ValidationError as bad:
        fields: dict[str, str] = {}
        for item in bad.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in item["loc"]) or "body"
            fields.setdefault(where[:64], item["msg"])
        raise Invalid("malformed body", fields) from None
    return list(dict.fromkeys(body.instruments)), multiplier


def dry_run(params: QueryParams) -> bool:
    """The dry_run parameter of POST /profiles; Invalid for any other or a repeated one."""
    given = dict(params)
    problems = {k[:64]: "given more than once" for k in given if len(params.getlist(k)) > 1}
    try:
        parsed = ProfilesQuery.model_validate(given)
    except ValidationError as bad:
        for item in bad.errors(include_url=False, include_input=False):
            name = str(item["loc"][0])[:64] if item["loc"] else "query"
            problems.setdefault(
                name, "unknown parameter" if "extra" in item["type"] else item["msg"]
            )
    if problems:
        raise Invalid("bad query parameter", problems)
    return parsed.dry_run
