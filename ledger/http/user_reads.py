"""The live reads of users and strategies: the roster read model, caught up with the store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ledger.answers import Profiles
from ledger.bootstrap import Services
from ledger.http.lanes import POLLS, READS
from ledger.http.queries import Query
from ledger.http.reads import caught_up, endpoint
from ledger.http.responses import error
from ledger.http.spec import Doc
from ledger.http.user_paths import (
    Invalid,
    NamedRoute,
    StrategyPath,
    UserPath,
    UsersQuery,
    path_names,
)
from ledger.user_answers import StrategyState, StrategySummary, UserState, UserSummary
from projections import roster_reads

LIVE = (
    " Shows every change committed before the request: waits (at most 2 s, else 503) for"
    " the read models to reach the store's last sequence."
)


async def live(running: Services) -> Response | None:
    """Wait until the read models hold every change committed before this request (or 503)."""
    top = await POLLS.run(lambda _: running.ledger.last_sequence())
    if await caught_up(running, top):
        return None
    return error(503, f"the read models have not reached sequence {top} yet; retry")


async def users_read(running: Services, query: UsersQuery, request: Request) -> Any:
    """Every user's strategies: the profile file's shape, or with counts."""
    if (late := await live(running)) is not None:
        return late
    if query.counts:
        return await READS.run(partial(roster_reads.summaries, running.view, "users"))
    return await READS.run(partial(roster_reads.profiles, running.view))


async def strategies_read(running: Services, query: Query, request: Request) -> Any:
    """Every strategy's users, with open positions."""
    if (late := await live(running)) is not None:
        return late
    return await READS.run(partial(roster_reads.summaries, running.view, "strategies"))


def one_read(side: str) -> Callable[[Services, Query, Request], Awaitable[Any]]:
    """GET /users/{user} (side "users") or /strategies/{strategy} ("strategies")."""
    param, inner = ("user", "strategies") if side == "users" else ("strategy", "users")

    async def read(running: Services, query: Query, request: Request) -> Any:
        try:
            (name,) = path_names(request, param)
        except Invalid as bad:
            return error(422, bad.message, fields=bad.fields)
        if (late := await live(running)) is not None:
            return late
        found = await READS.run(partial(roster_reads.one, running.view, side, name))
        if found is None:
            return error(404, f"unknown {param}", fields={param: "trades nothing, holds nothing"})
        body, count = found
        return orjson.dumps({param: name, inner: orjson.Fragment(body), "open_positions": count})

    return read


def routes() -> list[BaseRoute]:
    """GET /users, /users/{user}, /strategies and /strategies/{strategy}."""
    one_user = Doc(
        "One user's strategies and open positions",
        UserState,
        path=UserPath,
        description="`open_positions` counts every strategy's, dropped ones included." + LIVE,
        errors={404: "unknown user: no strategy, no open position", 422: "a bad name"},
    )
    one_strategy = Doc(
        "One strategy's users and open positions",
        StrategyState,
        path=StrategyPath,
        description="`open_positions` counts every user's, those who dropped it included." + LIVE,
        errors={404: "unknown strategy: no user, no open position", 422: "a bad name"},
    )
    users_doc = Doc(
        "Every user's strategies, live",
        Profiles | dict[str, UserSummary],
        UsersQuery,
        description="The profile file's shape; with `counts=true`, each user as"
        ' `{"strategies": {...}, "open_positions": n}`.' + LIVE,
    )
    strategies_doc = Doc(
        "Every strategy's users and open positions, live",
        dict[str, StrategySummary],
        description=LIVE.strip(),
    )
    return [
        NamedRoute("/users", endpoint(users_read, users_doc), methods=["GET"], name="users"),
        NamedRoute(
            "/users/{user}", endpoint(one_read("users"), one_user), methods=["GET"], name="user"
        ),
        NamedRoute(
            "/strategies",
            endpoint(strategies_read, strategies_doc),
            methods=["GET"],
            name="strategies",
        ),
        NamedRoute(
            "/strategies/{strategy}",
            endpoint(one_read("strategies"), one_strategy),
            methods=["GET"],
            name="strategy",
        ),
    ]
