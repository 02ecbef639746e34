"""Users and strategies at run time: read, take up, change and drop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ledger import profiles as profile_files
from ledger.bootstrap import Services
from ledger.http import user_reads
from ledger.http.orders import BodyTooLarge, read_body
from ledger.http.responses import JSONResponse, error
from ledger.http.schemas import MAX_BODY
from ledger.http.spec import Doc, documented
from ledger.http.state import services
from ledger.http.user_paths import (
    BookPath,
    Instruments,
    Invalid,
    NamedRoute,
    ProfilesDocument,
    ProfilesQuery,
    UserPath,
    dry_run,
    instruments,
    path_names,
)
from ledger.user_answers import (
    SLICE_BOOKS,
    BookChange,
    Change,
    ChangeRequest,
    ProfilesApplied,
    Scope,
    StrategyChanged,
    UserDropped,
    entry,
    last_written,
)
from ledger.wire import WriterUnavailable, partition

# Seconds a document or a user's change may take to be answered: it may drop any number of
# books, 2,000 a commit (45,000 dropped by a 3-user document took ~11 s), which no worker can
# count beforehand; a 503 for time would leave the client not knowing what was applied.
BULK_WAIT = 60.0
PROFILES_BODY = 16 * 1024 * 1024  # a whole profile document: 10,000 users x 9 strategies fit
RETRY = "send the same request again: changes are idempotent by content"

# Writes: through the writer that owns the strategy, in order with the orders.


CHANGES = b',"changes":'  # where an answer's numbers end (ChangeAnswer keeps them first)


@dataclass
class Merged:
    """The answers of a request's parts (writer partitions, slices), merged."""

    unchanged: int = 0
    sequence: int | None = None  # the last written
    parts: list[bytes] = field(default_factory=list)  # each part's changes, a JSON array

    def add(self, body: bytes) -> None:
        """Take one part's answer (a ChangeAnswer as JSON) in."""
        # The numbers are read, the changes kept as bytes: parsing a 90,000-book document's
        # answer (and building its objects) held the worker's loop ~1 s.
        at = body.index(CHANGES)
        numbers = orjson.loads(body[:at] + b"}")
        self.unchanged += numbers["unchanged"]
        self.sequence = last_written([self.sequence, numbers["sequence"]])
        self.parts.append(body[at + len(CHANGES) : -1])

    def changes(self) -> list[BookChange]:
        """The changes, read (for the answers about one user or book)."""
        return [
            BookChange(**{**c, "change": Change(c["change"])})
            for part in self.parts
            for c in orjson.loads(part)
        ]

    def changes_json(self) -> orjson.Fragment:
        """The changes as one JSON array, joined from the parts' arrays."""
        return orjson.Fragment(b"[" + b",".join(p[1:-1] for p in self.parts if p != b"[]") + b"]")


async def changed(running: Services, requests: list[ChangeRequest], *, bulk: int = 0) -> Merged:
    """Send change requests (one per writer partition) and merge their answers.

    A `bulk` change (a document listing that many books, a user's whole change) may touch
    far more books than it lists, each 2,000 a commit: its answer may take BULK_WAIT seconds,
    or the time of an answer per slice of what it lists if that is longer.
    """
    wait = running.settings.answer_timeout
    if bulk:
        wait = max(wait * (2 + bulk // SLICE_BOOKS), BULK_WAIT)
    async with asyncio.timeout(wait):
        answers = await asyncio.gather(*(running.desk.place(r) for r in requests))
    failed = next((a for a in answers if a.failed), None)
    if failed is not None:
        raise WriterUnavailable(failed.body.decode())
    merged = Merged()
    for answer in answers:
        merged.add(answer.body)  # each change carries its writer's (its slice's) sequence
    return merged


def split(running: Services, request: ChangeRequest) -> list[ChangeRequest]:
    """One request per writer partition, each with its part of the document."""
    k = running.desk.partitions
    if k == 1:
        return [request]  # as it is: a 90,000-book document is not copied on the loop
    parts = []
    for n in range(k):
        part = {
            user: {s: i for s, i in strategies.items() if partition(s, k) == n}
            for user, strategies in request.profiles.items()
        }
        parts.append(
            ChangeRequest(
                request.scope, part, request.user, request.strategy, n, k, request.dry_run
            )
        )
    return parts


async def write(request: Request, decide: Callable[[Services], Awaitable[Response]]) -> Response:
    """Run a write; Invalid is 422, a writer that could not commit in time is 503."""
    running = services(request)
    try:
        return await decide(running)
    except Invalid as bad:
        return error(422, bad.message, fields=bad.fields)
    except BodyTooLarge:
        return error(413, "body too large")
    except BodyTimeout as late:
        return error(408, str(late))
    except ClientDisconnect:
        return error(400, "client disconnected before sending the body")
    except TimeoutError:
        return error(503, "not answered in time; the change may still commit", retry=RETRY)
    except WriterUnavailable as unavailable:
        return error(503, str(unavailable), retry=RETRY)


class BodyTimeout(Exception):
    """The body did not arrive within the server's body timeout (408, nothing decided)."""


async def body(request: Request, limit: int) -> bytes:
    """The request body within the server's body timeout."""
    seconds = services(request).settings.body_timeout
    try:
        async with asyncio.timeout(seconds):
            return await read_body(request, limit)
    except TimeoutError:
        # Not the writer's TimeoutError: nothing was sent to it, nothing can commit.
        raise BodyTimeout(f"body not received within {seconds} s") from None


WRITE_ERRORS = {
    400: "the client went away before sending the body",
    408: "the body did not arrive in time (nothing written)",
    413: "body too large",
    422: "a bad name in the path, or a malformed body or parameter; `fields` says which",
    503: "not committed (a writer restarting, the database unavailable, or no answer in"
    " time); send the same request again",
}


def strategy_changed(changes: list[BookChange], sequence: int | None) -> StrategyChanged:
    """The answer about one book: its one change."""
    (book,) = changes
    return StrategyChanged(
        book.user,
        book.strategy,
        book.instruments,
        book.change,
        sequence,
        book.kept_open,
        book.multiplier,
    )


@documented(
    Doc(
        "Take up a strategy, or change its instruments",
        StrategyChanged,
        path=BookPath,
        body=Instruments,
        description="`change` is `taken_up`, `changed` or `unchanged` (nothing written, and"
        " `sequence` null); a new `multiplier` is a change too. Orders with a greater"
        " `sequence` are decided with the change."
        " `kept_open`: open positions whose instrument left the list (a SELL closes them).",
        errors=WRITE_ERRORS,
    )
)
async def put_strategy(request: Request) -> Response:
    """PUT /users/{user}/strategies/{strategy}."""

    async def decide(running: Services) -> Response:
        user, strategy = path_names(request, "user", "strategy")
        listed, multiplier = instruments(await body(request, MAX_BODY))
        k = running.desk.partitions
        wanted = ChangeRequest(
            Scope.BOOK,
            {user: {strategy: entry(listed, multiplier)}},
            user,
            strategy,
            partition(strategy, k),
            k,
        )
        merged = await changed(running, [wanted])
        return JSONResponse(strategy_changed(merged.changes(), merged.sequence))

    return await write(request, decide)


@documented(
    Doc(
        "Drop a strategy",
        StrategyChanged,
        path=BookPath,
        description="`change` is `dropped`; open positions stay (`kept_open`) and a SELL"
        " still closes them.",
        errors={**WRITE_ERRORS, 404: "the user does not trade this strategy"},
    )
)
async def delete_strategy(request: Request) -> Response:
    """DELETE /users/{user}/strategies/{strategy}."""

    async def decide(running: Services) -> Response:
        user, strategy = path_names(request, "user", "strategy")
        k = running.desk.partitions
        dropped = ChangeRequest(Scope.BOOK, {}, user, strategy, partition(strategy, k), k)
        merged = await changed(running, [dropped])
        if not (changes := merged.changes()):
            return error(
                404, "the user does not trade this strategy", fields={"strategy": strategy}
            )
        return JSONResponse(strategy_changed(changes, merged.sequence))

    return await write(request, decide)


@documented(
    Doc(
        "Drop every strategy of a user",
        UserDropped,
        path=UserPath,
        description="Open positions stay (`kept_open` of each) and a SELL still closes them."
        " Each dropped strategy has the `sequence` of its writer (with several writer"
        " processes they differ); the answer's `sequence` is the last.",
        errors={**WRITE_ERRORS, 404: "the user trades no strategy"},
    )
)
async def delete_user(request: Request) -> Response:
    """DELETE /users/{user}."""

    async def decide(running: Services) -> Response:
        (user,) = path_names(request, "user")
        dropping = split(running, ChangeRequest(Scope.USER, {}, user))
        merged = await changed(running, dropping, bulk=1)
        dropped = merged.changes()
        if not dropped:
            return error(404, "the user trades no strategy", fields={"user": user})
        return JSONResponse(UserDropped(user, dropped, merged.sequence))

    return await write(request, decide)


@documented(
    Doc(
        "Apply a whole profile document, as the start-up import does",
        ProfilesApplied,
        ProfilesQuery,
        body=ProfilesDocument,
        description="The document has the profile file's shape. Books it lists are taken up"
        " or changed, books it does not list are dropped (open positions kept); `changes`"
        " lists what differs, `unchanged` counts the rest. With several writer processes a"
        " document is applied per writer partition, each at its own sequence: each change"
        " has the `sequence` of its strategy's writer, the answer's `sequence` is the last."
        f" A change touching more than {SLICE_BOOKS:,} books (listed or dropped) is committed"
        f" {SLICE_BOOKS:,} books at a time, each slice at its own sequence; orders sent"
        " meanwhile are decided between slices. A writer applies one document (or one"
        " user's DELETE) at a time: another document sent meanwhile is answered 503.",
        errors={**WRITE_ERRORS, 413: f"body over {PROFILES_BODY // 2**20} MiB"},
    )
)
async def post_profiles(request: Request) -> Response:
    """POST /profiles."""

    async def decide(running: Services) -> Response:
        dry = dry_run(request.query_params)
        raw = await body(request, PROFILES_BODY)
        try:
            # In a thread: checking a 13 MB document (~1 s) on the loop held every request
            # of this worker meanwhile; in a thread the loop still gets its turns.
            document = await asyncio.to_thread(profile_files.parse, raw)
        except profile_files.ProfileError as bad:
            raise Invalid("not a profile document", {"body": str(bad)[:500]}) from None
        whole = ChangeRequest(Scope.ALL, document, dry_run=dry)
        books = sum(map(len, document.values()))
        merged = await changed(running, split(running, whole), bulk=max(books, 1))
        # ProfilesApplied's fields, in its order, the changes as the writers rendered them.
        applied = {"dry_run": dry, "changes": merged.changes_json()}
        return JSONResponse({**applied, "unchanged": merged.unchanged, "sequence": merged.sequence})

    return await write(request, decide)


def routes() -> list[BaseRoute]:
    """This module's endpoints: the reads of ledger.http.user_reads, and the changes."""
    return [
        *user_reads.routes(),
        NamedRoute("/users/{user}", delete_user, methods=["DELETE"], name="drop_user"),
        NamedRoute(
            "/users/{user}/strategies/{strategy}", put_strategy, methods=["PUT"], name="take_up"
        ),
        NamedRoute(
            "/users/{user}/strategies/{strategy}", delete_strategy, methods=["DELETE"], name="drop"
        ),
        NamedRoute("/profiles", post_profiles, methods=["POST"], name="profiles"),
    ]
