"""`ledger tail`: follow the event stream in a terminal, resuming after a dropped connection."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import orjson

log = logging.getLogger(__name__)

RECONNECT = 1.0  # seconds between attempts while the server is away


def size(quantity: Any, price: Any) -> str:
    """ " 5 @ 12.5", " 5", " @ 12.5" or "" (quantity 1 at no price: what the producer sends)."""
    text = f" {quantity}" if quantity not in (None, 1, "1") else ""
    return text + (f" @ {price}" if price is not None else "")


def line(kind: str, sequence: str, data: dict[str, Any]) -> str:
    """One readable line for one event."""
    if kind == "order":
        accepted = ", ".join(data["accepted_for"]) or "nobody"
        refused = "; ".join(f"{r['user']} {r['reason']}" for r in data["rejected_for"])
        why = f" ({data['reason']})" if data.get("reason") else ""
        tail = f"; refused {refused}" if refused else ""
        return (
            f"#{sequence} order {data['RESPONSE']}{why} {data['order_id']}: {data['position']}"
            f"{size(data.get('quantity'), data.get('price'))}"
            f" {data['strategy']} {data['instrument']} for {accepted}{tail}"
        )
    if kind == "position":
        pnl = data.get("realised_pnl")
        return (
            f"#{sequence} position {data['action']}: {data['user']} {data['strategy']}"
            f" {data['instrument']}{size(data.get('quantity'), data.get('price'))}"
            f" (order {data['order_id']})" + (f" P&L {pnl}" if pnl is not None else "")
        )
    if kind == "profile":
        listed = ", ".join(data["instruments"])
        return f"#{sequence} profile {data['change']}: {data['user']} {data['strategy']}" + (
            f" [{listed}]" if listed else ""
        )
    return f"#{sequence} {kind}: {orjson.dumps(data).decode()}"


class Refused(Exception):
    """The server answered the stream request with an error: retrying would not help."""


def follow(
    url: str,
    params: dict[str, str],
    after: int | None,
    out: TextIO,
    token: str | None = None,
    keep_going: Callable[[], bool] = lambda: True,
) -> None:
    """Print every event; after a dropped connection, resume after the last one printed."""
    # Only this command's: the server's processes, which import this module, never load them.
    import httpx  # noqa: PLC0415
    from httpx_sse import connect_sse  # noqa: PLC0415

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    last = after
    while keep_going():
        query = dict(params)
        if last is not None:
            query["after"] = str(last)
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10, read=None), headers=headers) as client,
                connect_sse(client, "GET", f"{url}/stream", params=query) as source,
            ):
                if source.response.status_code != 200:
                    source.response.read()
                    raise Refused(f"{source.response.status_code}: {source.response.text}")
                for event in source.iter_sse():
                    if not event.data:
                        continue  # the retry hint
                    out.write(line(event.event, event.id, orjson.loads(event.data)) + "\n")
                    out.flush()
                    last = int(event.id)
        except httpx.HTTPError as dropped:
            log.warning("stream interrupted (%s); resuming after %s", dropped, last)
        time.sleep(RECONNECT)  # not synchronisation: a pause before reconnecting


def run(args: argparse.Namespace) -> int:
    """The `tail` command."""
    params = {
        name: value
        for name in ("user", "strategy", "instrument", "types")
        if (value := getattr(args, name)) is not None
    }
    try:
        follow(
            args.url.rstrip("/"), params, args.after, sys.stdout, os.environ.get("LEDGER_API_TOKEN")
        )
    except Refused as refused:
        sys.stderr.write(f"ledger tail: the server refused the stream: {refused}\n")
        return 1
    return 0


def register(sub: Any) -> None:
    """Add the `tail` command to the CLI's sub-commands."""
    p = sub.add_parser("tail", help="follow the ledger's events live (GET /stream)")
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--user", help="comma list of users")
    p.add_argument("--strategy", help="comma list of strategies")
    p.add_argument("--instrument", help="comma list of instruments")
    p.add_argument("--types", help="comma list of order, position, profile")
    p.add_argument("--after", type=int, help="start after this sequence (default: now)")
    p.set_defaults(func=run)
