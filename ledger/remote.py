"""`ledger users`, `subscribe` and `unsubscribe`: the users API of a running server."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any
from urllib.parse import quote

DEFAULT_URL = "http://127.0.0.1:8080"


def _path(*names: str) -> str:
    # Every character of a name but the unreserved is encoded: a "/" in it stays in its segment.
    return "/".join(quote(name, safe="") for name in names)


def _send(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    """One request: the httpx response, or None (the failure told on stderr)."""
    import httpx  # noqa: PLC0415 - only this command's: the server's processes never load it

    token = os.environ.get("LEDGER_API_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return httpx.request(
            method, args.url.rstrip("/") + path, json=body, headers=headers, timeout=30
        )
    except httpx.HTTPError as failure:
        sys.stderr.write(f"ledger: {args.url} did not answer: {failure}\n")
        return None


def _shown(response: Any) -> str:
    try:
        return json.dumps(response.json(), indent=2, ensure_ascii=False)
    except ValueError:
        return str(response.text)


def call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> int:
    """One request; the answer's JSON on stdout (0), or the error on stderr (1)."""
    response = _send(args, method, path, body)
    if response is None:
        return 1
    if response.status_code != 200:
        sys.stderr.write(f"ledger: {response.status_code}: {_shown(response)}\n")
        return 1
    sys.stdout.write(_shown(response) + "\n")
    return 0


def users(args: argparse.Namespace) -> int:
    """Print every user's strategies (or one user's, with open positions)."""
    if args.user:
        return call(args, "GET", "/users/" + _path(args.user))
    return call(args, "GET", "/users" + ("?counts=true" if args.counts else ""))


def subscribe(args: argparse.Namespace) -> int:
    """Take up a strategy for a user, or change its instruments (and multiplier)."""
    body: dict[str, Any] = {"instruments": args.instruments}
    multiplier = args.multiplier
    if multiplier is None:
        # A PUT without one sets 1: a new instrument list keeps the multiplier it had.
        current = _send(args, "GET", "/users/" + _path(args.user))
        if current is None:
            return 1
        if current.status_code == 200:
            held = current.json()["strategies"].get(args.strategy)
            multiplier = held["multiplier"] if isinstance(held, dict) else None
        elif current.status_code != 404:  # 404: the user has no strategy yet
            sys.stderr.write(f"ledger: {current.status_code}: {_shown(current)}\n")
            return 1
    if multiplier is not None:
        body["multiplier"] = multiplier
    return call(args, "PUT", "/users/" + _path(args.user, "strategies", args.strategy), body)


def unsubscribe(args: argparse.Namespace) -> int:
    """Drop a strategy of a user (every strategy without STRATEGY)."""
    if args.strategy is None:
        return call(args, "DELETE", "/users/" + _path(args.user))
    return call(args, "DELETE", "/users/" + _path(args.user, "strategies", args.strategy))


def add_commands(sub: Any) -> Any:
    """Register the commands on the `ledger` parser's sub-parsers; returns them."""
    url = {"default": DEFAULT_URL, "help": f"the server (default {DEFAULT_URL})"}
    p = sub.add_parser("users", help="print the users' strategies of a running server")
    p.add_argument("user", nargs="?", help="only this user, with open positions")
    p.add_argument("--counts", action="store_true", help="open positions of each user")
    p.add_argument("--url", **url)
    p.set_defaults(func=users)

    p = sub.add_parser("subscribe", help="a user takes up a strategy, or changes its list")
    p.add_argument("user")
    p.add_argument("strategy")
    p.add_argument("instruments", nargs="+", metavar="INSTRUMENT")
    p.add_argument(
        "--multiplier",
        help="booked quantity = the order's times this (default: keep the strategy's, else 1)",
    )
    p.add_argument("--url", **url)
    p.set_defaults(func=subscribe)

    p = sub.add_parser("unsubscribe", help="a user drops a strategy (all, without STRATEGY)")
    p.add_argument("user")
    p.add_argument("strategy", nargs="?")
    p.add_argument("--url", **url)
    p.set_defaults(func=unsubscribe)
    return sub
