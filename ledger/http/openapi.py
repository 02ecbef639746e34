"""The OpenAPI description of every endpoint, its body and its answers, and a docs page."""

from __future__ import annotations

from typing import Any

NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]+$",
}
INT64 = 2**63 - 1
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "fields": {"type": "object"}},
}
REJECTION = {
    "type": "object",
    "required": ["user", "reason"],
    "properties": {
        "user": {"type": "string"},
        "reason": {
            "type": "string",
            "enum": ["INSTRUMENT_NOT_IN_STRATEGY", "ALREADY_OPEN", "NO_OPEN_POSITION"],
        },
    },
}
ANSWER_FIELDS: dict[str, Any] = {
    "RESPONSE": {"type": "string", "enum": ["ACCEPTED", "REJECTED"]},
    "order_id": {"type": "string"},
    "sequence": {"type": "integer"},
    "strategy": {"type": "string"},
    "instrument": {"type": "string"},
    "position": {"type": "string", "enum": ["BUY", "SELL"]},
    "accepted_for": {"type": "array", "items": {"type": "string"}},
    "rejected_for": {"type": "array", "items": REJECTION},
    "reason": {"type": ["string", "null"], "enum": ["UNKNOWN_STRATEGY", None]},
}
ANSWER = {"type": "object", "required": list(ANSWER_FIELDS), "properties": ANSWER_FIELDS}
LOGGED = {
    "type": "object",
    "required": [*ANSWER_FIELDS, "received_at"],
    "properties": {**ANSWER_FIELDS, "received_at": {"type": "string", "format": "date-time"}},
}
POSITION = {
    "type": "object",
    "required": ["user", "strategy", "instrument", "order_id", "opened_at"],
    "properties": {
        "user": {"type": "string"},
        "strategy": {"type": "string"},
        "instrument": {"type": "string"},
        "order_id": {"type": "string"},
        "opened_at": {"type": "string", "format": "date-time"},
    },
}
TRADE = {
    "type": "object",
    "required": ["user", "strategy", "instrument", "buy_order_id", "sell_order_id"],
    "properties": {
        **{k: {"type": "string"} for k in ("user", "strategy", "instrument")},
        "buy_order_id": {"type": "string"},
        "sell_order_id": {"type": "string"},
        "opened_at": {"type": "string", "format": "date-time"},
        "closed_at": {"type": "string", "format": "date-time"},
    },
}
CURSOR = {"type": ["string", "null"]}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _page(name: str, item: dict[str, Any]) -> dict[str, Any]:
    """A page of a paginated list: {name: [...], "next": cursor}."""
    schema = {
        "type": "object",
        "required": [name, "next"],
        "properties": {name: {"type": "array", "items": item}, "next": CURSOR},
    }
    return _json(schema, "a page")


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


FILTERS = [
    _query("user", NAME, "only this user"),
    _query("strategy", NAME, "only this strategy"),
    _query("instrument", NAME, "only this instrument"),
    _query(
        "min_sequence",
        {"type": "integer", "minimum": 0, "maximum": INT64},
        "wait (at most 2 s, else 503) until the read models reach this sequence",
    ),
]
PAGING = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size (100)"),
    _query(
        "after",
        {"type": "integer", "minimum": 0, "maximum": INT64},
        "the `next` cursor of the last page",
    ),
]
READ_ERRORS = {
    "422": _json(ERROR, "a query parameter is not usable"),
    "503": _json(ERROR, "the read models have not reached min_sequence, or no database"),
}
ORDER_BODY = {
    "type": "object",
    "required": ["STRATEGY", "INSTRUMENT", "POSITION"],
    "additionalProperties": False,
    "properties": {
        "STRATEGY": NAME,
        "INSTRUMENT": NAME,
        "POSITION": {"type": "string", "enum": ["BUY", "SELL"]},
        "ORDER_ID": NAME,
    },
}
POST_ORDER = {
    "summary": "Decide an order for every user who trades its strategy",
    "description": "Keys may also be lower case. The same ORDER_ID returns the first answer.",
    "requestBody": {"required": True, "content": {"application/json": {"schema": ORDER_BODY}}},
    "responses": {
        "200": _json(ANSWER, "decided and committed"),
        "409": _json(ERROR, "ORDER_ID already used for a different order"),
        "413": _json(ERROR, "body over 64 KiB"),
        "422": _json(ERROR, "malformed order; `fields` names the bad fields"),
        "503": _json(ERROR, "database unavailable; send again with the same ORDER_ID"),
    },
}
HEALTH = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}


def schema() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Order ledger", "version": "1.0.0"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/order": {"post": {**POST_ORDER, "operationId": "order"}},
            "/create_order": {"post": {**POST_ORDER, "operationId": "create_order"}},
            "/health": {
                "get": {
                    "summary": "Liveness and projection lag",
                    "security": [],
                    "responses": {
                        "200": _json(HEALTH, "database reachable"),
                        "503": _json(HEALTH, "database unreachable"),
                    },
                }
            },
            "/users": {
                "get": {
                    "summary": "The profiles as imported",
                    "responses": {"200": _json({"type": "object"}, "profiles")},
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
            "/positions": {
                "get": {
                    "summary": "Open positions",
                    "parameters": [
                        *FILTERS,
                        _query(
                            "as_of",
                            {"type": "integer", "minimum": 0, "maximum": INT64},
                            "positions right after this sequence",
                        ),
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["positions"],
                                "properties": {"positions": {"type": "array", "items": POSITION}},
                            },
                            "open positions",
                        ),
                        **READ_ERRORS,
                    },
                }
            },
            "/orders": {
                "get": {
                    "summary": "The order log, ascending sequence",
                    "parameters": [
                        *FILTERS,
                        *PAGING,
                        _query(
                            "status",
                            {"type": "string", "enum": ["ACCEPTED", "REJECTED"]},
                            "outcome",
                        ),
                    ],
                    "responses": {
                        "200": _page("orders", LOGGED),
                        **READ_ERRORS,
                    },
                }
            },
            "/orders/{order_id}": {
                "get": {
                    "summary": "One order of the log",
                    "parameters": [
                        {
                            "name": "order_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        FILTERS[-1],
                    ],
                    "responses": {
                        "200": _json(LOGGED, "the order"),
                        "404": _json(ERROR, "unknown order"),
                        **READ_ERRORS,
                    },
                }
            },
            "/trades": {
                "get": {
                    "summary": "Closed trades, in the order they closed",
                    "parameters": [*FILTERS, *PAGING],
                    "responses": {
                        "200": _page("trades", TRADE),
                        **READ_ERRORS,
                    },
                }
            },
        },
    }


DOCS = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Order ledger API</title></head>
<body><h1>Order ledger API</h1>
<p>The machine-readable description is at <a href="openapi.json">/openapi.json</a>.</p>
<div id="swagger-ui"></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>
if (window.SwaggerUIBundle) { SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui"}); }
</script></body></html>
"""
