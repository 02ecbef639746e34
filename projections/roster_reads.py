"""Reading the roster read model: users and strategies, with their open positions, as JSON.

PostgreSQL builds each answer's JSON in one statement (one snapshot, and no decoding and
encoding again in Python): a strategy of 10,000 users is one index range and one aggregate.
"""

from __future__ import annotations

from typing import Any

from psycopg.sql import SQL, Composed

from projections.views import Cancellation, LedgerView

# The profile file's shape: {"User": {"STRATEGY": ["INSTRUMENT", ...]}}, keys in name order.
_PROFILES = (
    "SELECT coalesce(json_object_agg(user_name, s ORDER BY user_name), json_build_object())::text"
    " AS body"
    " FROM (SELECT user_name, json_object_agg(strategy, instruments ORDER BY strategy) AS s"
    " FROM {books} WHERE active GROUP BY user_name) AS b"
)
# The same, each side keyed by one name: {"Name": {"<inner>": {...}, "open_positions": n}},
# every name with an active book or an open position.
_SUMMARIES = (
    "WITH b AS (SELECT {outer} AS name, json_object_agg({inner}, instruments ORDER BY {inner})"
    " AS m FROM {books} WHERE active GROUP BY {outer}),"
    " p AS (SELECT {outer} AS name, count(*) AS n FROM {positions} GROUP BY {outer})"
    " SELECT coalesce(json_object_agg(name, json_build_object('{label}',"
    " coalesce(m, json_build_object()), 'open_positions', coalesce(n, 0)) ORDER BY name),"
    " json_build_object())::text AS body"
    " FROM b FULL JOIN p USING (name)"
)
# One name: its map (null when it has no active book) and its open positions.
_ONE = (
    "SELECT (SELECT json_object_agg({inner}, instruments ORDER BY {inner}) FROM {books}"
    " WHERE {outer} = %s AND active)::text AS body,"
    " (SELECT count(*) FROM {positions} WHERE {outer} = %s) AS n"
)
SIDES = {"users": ("user_name", "strategy"), "strategies": ("strategy", "user_name")}


def _run(view: LedgerView, statement: Composed, params: list[Any], c: Cancellation | None) -> Any:
    rows = view.query(statement, params, c)
    return rows[0] if rows else None


def profiles(view: LedgerView, cancellation: Cancellation | None = None) -> bytes:
    """Every active book, in the profile file's shape."""
    statement = SQL(_PROFILES.format(books="{0}")).format(view.books)
    return str(_run(view, statement, [], cancellation)["body"]).encode()


def summaries(view: LedgerView, side: str, cancellation: Cancellation | None = None) -> bytes:
    """Every user (side "users") or strategy ("strategies") with its map and open positions."""
    statement = SQL(_template(_SUMMARIES, side)).format(view.books, view.tables["positions"])
    return str(_run(view, statement, [], cancellation)["body"]).encode()


def one(
    view: LedgerView, side: str, name: str, cancellation: Cancellation | None = None
) -> tuple[bytes, int] | None:
    """One user's strategies or one strategy's users as JSON, and its open positions.

    None when the name has no active book and no open position.
    """
    statement = SQL(_template(_ONE, side)).format(view.books, view.tables["positions"])
    row = _run(view, statement, [name, name], cancellation)
    body, count = (row["body"], int(row["n"])) if row else (None, 0)
    if body is None and count == 0:
        return None
    return (body or "{}").encode(), count


def _template(template: str, side: str) -> str:
    # Column names and labels are this module's constants, never input: they are formatted
    # in; psycopg's own format then fills in the table identifiers.
    outer, inner = SIDES[side]
    label = "strategies" if side == "users" else "users"
    return template.format(outer=outer, inner=inner, label=label, books="{0}", positions="{1}")
