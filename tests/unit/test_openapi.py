"""The OpenAPI document is generated from the answer types: nothing in it is kept by hand."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ledger.answers import LoggedOrder, OpenPosition, OrderAnswer, Trade
from ledger.domain import Outcome, Position, Reason
from ledger.http import app, auth, openapi
from ledger.http.spec import doc_of
from projections.queries import MAX_LIMIT, MAX_POSITIONS


def document() -> dict[str, Any]:
    """The document of the app's routes."""
    return openapi.document(app.routes())


def resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """Follow a $ref into components."""
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def enum_of(schema: dict[str, Any], doc: dict[str, Any]) -> list[Any]:
    schema = resolve(schema, doc)
    values: list[Any] = list(schema.get("enum", []))
    for branch in schema.get("anyOf", []):
        values += enum_of(branch, doc)
    return values


def answer_schema(path: str, doc: dict[str, Any], method: str = "get") -> dict[str, Any]:
    content = doc["paths"][path][method]["responses"]["200"]["content"]
    return resolve(content["application/json"]["schema"], doc)


def test_answer_fields_come_from_the_dataclasses() -> None:
    doc = document()
    for kind in (OrderAnswer, LoggedOrder, OpenPosition, Trade):
        schema = doc["components"]["schemas"][kind.__name__]
        answered = [f.name for f in fields(kind) if not f.name.startswith("_")]  # as orjson
        assert list(schema["properties"]) == answered
        assert set(schema["required"]) == set(answered)
    assert answer_schema("/order", doc, "post") == doc["components"]["schemas"]["OrderAnswer"]


def test_enums_are_the_domain_enums() -> None:
    doc = document()
    answer = doc["components"]["schemas"]["OrderAnswer"]["properties"]
    assert enum_of(answer["RESPONSE"], doc) == [o.value for o in Outcome]
    assert enum_of(answer["position"], doc) == [p.value for p in Position]
    assert set(enum_of(answer["reason"], doc)) == {r.value for r in Reason}
    rejection = resolve(answer["rejected_for"]["items"], doc)
    assert enum_of(rejection["properties"]["reason"], doc) == [r.value for r in Reason]


def test_query_parameters_come_from_the_query_models() -> None:
    doc = document()
    params = {p["name"]: p for p in doc["paths"]["/orders"]["get"]["parameters"]}
    assert set(params) == {
        "user",
        "strategy",
        "instrument",
        "status",
        "limit",
        "after",
        "newest_first",
        "min_sequence",
    }
    assert params["limit"]["schema"]["maximum"] == MAX_LIMIT
    assert enum_of(params["status"]["schema"], doc) == [o.value for o in Outcome]
    positions = {p["name"]: p for p in doc["paths"]["/positions"]["get"]["parameters"]}
    assert "as_of" in positions
    assert "as_of" not in params  # as_of exists on /positions only
    assert positions["after"]["schema"]["type"] == "string"  # an opaque cursor, not a key
    assert positions["limit"]["schema"]["maximum"] == MAX_POSITIONS


def test_every_ref_resolves() -> None:
    doc = document()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(node, doc)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)


def test_every_route_is_described_and_public_ones_need_no_token() -> None:
    doc = document()
    for route in app.routes():
        if not hasattr(route, "endpoint"):
            continue  # the static files of the docs page
        described = doc_of(route.endpoint)
        assert described is not None, route.path
        assert route.path_format in doc["paths"]
        assert described.public == (route.path in auth.OPEN_PATHS), route.path
