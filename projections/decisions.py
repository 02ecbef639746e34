"""One order's decisions, a page at a time: for orders fanned out to thousands of users."""

from __future__ import annotations

from psycopg.sql import SQL

from ledger.answers import Decision, DecisionsPage
from ledger.domain import Outcome, Reason
from projections.views import Cancellation, LedgerView

DEFAULT_DECISIONS = 1000
MAX_DECISIONS = 10_000


def decisions(
    view: LedgerView,
    order_id: str,
    limit: int,
    after: int | None,
    cancellation: Cancellation | None = None,
) -> DecisionsPage | None:
    """A page of one order's decisions (accepted users first, in the answer's order), or None.

    The cursor is the position in that list: the lists never change once the order is stored.
    """
    table = view.tables["orders"]
    counts = view.query(
        SQL(
            "SELECT jsonb_array_length(accepted_for) AS accepted,"
            " jsonb_array_length(rejected_for) AS rejected FROM {0} WHERE order_id = %s"
        ).format(table),
        [order_id],
        cancellation,
    )
    if not counts:
        return None
    accepted, rejected = counts[0]["accepted"], counts[0]["rejected"]
    start = after or 0
    statement = SQL(
        "SELECT n, name, reason FROM ("
        " SELECT a.n, a.value #>> '{{}}' AS name, NULL AS reason"
        " FROM {0}, jsonb_array_elements(accepted_for) WITH ORDINALITY AS a(value, n)"
        " WHERE order_id = %s AND a.n > %s AND a.n <= %s"
        " UNION ALL"
        " SELECT jsonb_array_length(accepted_for) + r.n, r.value ->> 'user', r.value ->> 'reason'"
        " FROM {0}, jsonb_array_elements(rejected_for) WITH ORDINALITY AS r(value, n)"
        " WHERE order_id = %s AND jsonb_array_length(accepted_for) + r.n > %s"
        " AND jsonb_array_length(accepted_for) + r.n <= %s"
        ") AS d ORDER BY n"
    ).format(table)
    stop = start + limit
    rows = view.query(statement, [order_id, start, stop, order_id, start, stop], cancellation)
    page = [
        Decision(
            row["name"],
            Outcome.REJECTED if row["reason"] else Outcome.ACCEPTED,
            Reason(row["reason"]) if row["reason"] else None,
        )
        for row in rows
    ]
    more = stop < accepted + rejected
    return DecisionsPage(order_id, accepted, rejected, page, str(stop) if more else None)
