"""The read models as terminal tables, for `ledger orders`, `positions` and `trades`."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

from ledger.answers import LoggedOrder, OpenPosition, Trade
from ledger.domain import Outcome


def cell(value: Any) -> str:
    """A value as text; times in ISO 8601."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Rows as aligned columns under a header."""
    cells = [[cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells)
    return "\n".join(lines)


def rows(what: str, view: Any, args: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The rows to print, as plain values, and the cursor of the next page."""
    from projections import queries  # noqa: PLC0415

    status = Outcome(args.status) if getattr(args, "status", None) else None
    filters = queries.Filters(args.user, args.strategy, args.instrument, status)
    if what == "positions":
        positions = queries.positions(view, filters, args.limit, args.after)
        return [asdict(p) for p in positions.positions], positions.next
    if what == "trades":
        page = queries.trades(view, filters, args.limit, args.after)
        return [asdict(t) for t in page.trades], page.next
    orders = queries.orders(view, filters, args.limit, args.after)
    shown = []
    for order in orders.orders:
        row = asdict(order)
        row["accepted_for"] = ", ".join(order.accepted_for)
        row["rejected_for"] = ", ".join(f"{r['user']} ({r['reason']})" for r in order.rejected_for)
        shown.append(row)
    return shown, orders.next


COLUMNS = {
    "positions": [f.name for f in fields(OpenPosition)],
    "orders": [f.name for f in fields(LoggedOrder) if f.name != "reason"],
    "trades": [f.name for f in fields(Trade)],
}
