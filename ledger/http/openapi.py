"""The OpenAPI document, generated from the routes: the Doc each declares, its types and models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter
from starlette.routing import BaseRoute, Route

from ledger.answers import ErrorBody
from ledger.http.spec import Doc, doc_of

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
    required = set(schema.get("required", []))
    for name, described in schema["properties"].items():
        field = _not_null(described)
        field.pop("title", None)
        description = field.pop("description", "")
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": field,
                "description": description,
            }
        )
    return parameters


def _operation(route: Route, doc: Doc, c: Components) -> dict[str, Any]:
    """The OpenAPI operation of one route, from the Doc it declares."""
    error = c.ref(ErrorBody)
    if doc.answer is not None:
        ok = _json(c.ref(doc.answer), "OK")
    else:
        ok = {"description": "OK", "content": {doc.media_type: {"schema": {"type": "string"}}}}
    responses: dict[str, Any] = {"200": ok}
    for status, (kind, why) in doc.answers.items():
        responses[str(status)] = _json(c.ref(kind), why)
    for status, why in sorted(doc.errors.items()):
        responses[str(status)] = _json(error, why)
    described = {p["name"]: p for p in _parameters(doc.path)} if doc.path is not None else {}
    parameters = [
        {**described[name], "in": "path", "required": True}
        if name in described
        else {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.param_convertors
    ]
    parameters += _parameters(doc.query) if doc.query is not None else []
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": doc.summary,
        "responses": responses,
    }
    if doc.description:
        operation["description"] = doc.description
    if parameters:
        operation["parameters"] = parameters
    if doc.body is not None:
        schema = doc.body.model_json_schema(ref_template=REF)
        c.schemas.update(schema.pop("$defs", {}))  # a body's nested models, as components
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    if doc.public:
        operation["security"] = []
    return operation


def document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every documented route."""
    c = Components()
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        doc = doc_of(getattr(route, "endpoint", None))
        if not isinstance(route, Route) or doc is None:
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(route.path_format, {})[method.lower()] = _operation(route, doc, c)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Order ledger", "version": "1.0.0"},
        "security": [{"bearer": []}, {}],
        "paths": paths,
        "components": {
            "schemas": c.schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
