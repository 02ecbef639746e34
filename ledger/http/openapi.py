"""The OpenAPI document, generated from the answer types, the order body and the query models."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter

from ledger.answers import (
    ErrorBody,
    Health,
    OrderAnswer,
    OrdersPage,
    Positions,
    Profiles,
    TradesPage,
    Unhealthy,
)
from ledger.answers import LoggedOrder as LoggedOrderAnswer
from ledger.http.queries import OrdersQuery, PositionsQuery, Query, TradesQuery
from ledger.http.schemas import MAX_BODY, OrderBody

REF = "#/components/schemas/{model}"


class Components:
    """Schemas of types, gathered under components/schemas, referred to by name."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def ref(self, kind: Any, name: str | None = None) -> dict[str, str]:
        """A $ref to the schema of `kind` (a dataclass, TypedDict, model or alias)."""
        schema = TypeAdapter(kind).json_schema(ref_template=REF, mode="serialization")
        self.schemas.update(schema.pop("$defs", {}))
        title = str(name or schema.get("title") or getattr(kind, "__name__", "Value"))
        self.schemas[title] = schema
        return {"$ref": REF.format(model=title)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent rather than null: drop the null branch of an Optional."""
    branches = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(branches) == 1:
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        return {**branches[0], **rest}
    return {k: v for k, v in schema.items() if k != "default"}


def _parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The query parameters of a read, from its pydantic model."""
    schema = model.model_json_schema(ref_template=REF)
    parameters = []
    for name, described in schema["properties"].items():
        field = _not_null(described)
        field.pop("title", None)
        description = field.pop("description", "")
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": field,
                "description": description,
            }
        )
    return parameters


def _read(
    summary: str, query: type[BaseModel], answer: dict[str, Any], errors: dict[str, Any]
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": _parameters(query),
            "responses": {"200": _json(answer, summary.lower()), **errors},
        }
    }


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    c = Components()
    error = c.ref(ErrorBody)
    read_errors = {
        "422": _json(error, "a query parameter is not usable"),
        "503": _json(error, "the read models have not reached min_sequence, or no database"),
    }
    body = OrderBody.model_json_schema(ref_template=REF)
    post_order = {
        "summary": "Decide an order for every user who trades its strategy",
        "description": "Keys may also be lower case. The same ORDER_ID returns the first answer.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "200": _json(c.ref(OrderAnswer), "decided and committed"),
            "409": _json(error, "ORDER_ID already used for a different order"),
            "413": _json(error, f"body over {MAX_BODY // 1024} KiB"),
            "422": _json(error, "malformed order; `fields` names the bad fields"),
            "503": _json(error, "database unavailable; send again with the same ORDER_ID"),
        },
    }
    one_order = _read("One order of the log", Query, c.ref(LoggedOrderAnswer), read_errors)
    one_order["get"]["parameters"].insert(
        0, {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}}
    )
    one_order["get"]["responses"]["404"] = _json(error, "unknown order")
    return {
        "openapi": "3.1.0",
        "info": {"title": "Order ledger", "version": "1.0.0"},
        "security": [{"bearer": []}, {}],
        "paths": {
            "/order": {"post": {**post_order, "operationId": "order"}},
            "/create_order": {"post": {**post_order, "operationId": "create_order"}},
            "/health": {
                "get": {
                    "summary": "Liveness and projection lag",
                    "security": [],
                    "responses": {
                        "200": _json(c.ref(Health), "database reachable"),
                        "503": _json(c.ref(Unhealthy), "database unreachable"),
                    },
                }
            },
            "/users": {
                "get": {
                    "summary": "The profiles as imported",
                    "responses": {"200": _json(c.ref(Profiles, "Profiles"), "profiles")},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "text exposition",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/positions": _read("Open positions", PositionsQuery, c.ref(Positions), read_errors),
            "/orders": _read(
                "The order log, ascending sequence", OrdersQuery, c.ref(OrdersPage), read_errors
            ),
            "/orders/{order_id}": one_order,
            "/trades": _read(
                "Closed trades, in the order they closed",
                TradesQuery,
                c.ref(TradesPage),
                read_errors,
            ),
        },
        "components": {
            "schemas": c.schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
