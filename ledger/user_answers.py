"""The shapes of the users-and-strategies API: change requests, their answers, the live roster."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from typing_extensions import TypedDict

from ledger.amounts import ONE

# Plain dataclasses as in ledger/answers.py: orjson renders them, TypeAdapter derives schemas.


class Scaled(TypedDict):
    """A user's strategy whose booked quantities are the orders' times `multiplier`."""

    instruments: list[str]
    multiplier: str  # an exact decimal, never "1" (that is the plain list)


# One book in a profile document: its instruments, or the object form when scaled.
Entry = list[str] | Scaled


def entry(instruments: list[str], multiplier: str) -> Entry:
    """A book's document form: the list when its multiplier is 1, else the object form."""
    if multiplier == ONE:
        return list(instruments)
    return Scaled(instruments=list(instruments), multiplier=multiplier)


def parts(value: Entry) -> tuple[list[str], str]:
    """A document form's (instruments, multiplier)."""
    if isinstance(value, list):
        return value, ONE
    return value["instruments"], value["multiplier"]


class Change(StrEnum):
    """What a change did to one user's strategy."""

    TAKEN_UP = "taken_up"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    DROPPED = "dropped"


class Scope(StrEnum):
    """Which books a change request covers: the books outside keep what they have."""

    BOOK = "book"  # one (user, strategy)
    USER = "user"  # every strategy of one user
    ALL = "all"  # every book: a whole profile document


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """Set the books in scope to `profiles` (a book in scope but not in it is dropped)."""

    scope: Scope
    profiles: dict[str, dict[str, Entry]]
    user: str = ""  # the scope's user (BOOK, USER)
    strategy: str = ""  # the scope's strategy (BOOK)
    partition: int = 0  # only strategies of this writer partition are in scope
    partitions: int = 1
    dry_run: bool = False
    # The rest of a request the writer decides in slices (see ledger.changes.decide): the books
    # still to decide, in order; None for a request as sent.
    keys: list[tuple[str, str]] | None = None


SLICE_BOOKS = 2000  # books a writer decides and commits at once: orders wait for one slice


@dataclass(frozen=True, slots=True)
class BookChange:
    """One user's strategy after a change; `kept_open`: open positions no longer listed."""

    user: str
    strategy: str
    instruments: list[str]  # empty when dropped
    change: Change
    kept_open: list[str]
    multiplier: str = ONE  # booked quantity = order quantity x this ("1" when dropped)
    # The change's place in the log: orders of its strategy with a greater sequence were
    # decided with it, smaller ones without. Null when nothing was written. With several
    # writers a request's changes are written by each strategy's writer, at its own sequence.
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class ChangeAnswer:
    """A writer's answer to a change request; `sequence` is null when nothing was written."""

    unchanged: int
    sequence: int | None
    dry_run: bool
    # Last, after the numbers: a worker merges the answers of a document's slices by reading
    # those and joining these as JSON (see ledger.http.users.Merged), parsing none of them.
    changes: list[BookChange]  # every book changed (for Scope.BOOK, unchanged too)


@dataclass(frozen=True, slots=True)
class ChangeOutcome:
    """A change request's outcome, as the writer resolves it (beside OrderOutcome)."""

    answer: ChangeAnswer
    reused_id: bool = False  # never: a change has no ORDER_ID (the wire's flag stays clear)
    stored: bool = False
    rest: ChangeRequest | None = None  # what is left to decide, in the writer's next batches


@dataclass(frozen=True, slots=True)
class StrategyChanged:
    """PUT and DELETE /users/{user}/strategies/{strategy}: the strategy after the change."""

    user: str
    strategy: str
    instruments: list[str]
    change: Change
    sequence: int | None  # null when nothing was written (unchanged)
    kept_open: list[str]  # instruments with an open position that the list no longer has
    multiplier: str  # an exact decimal: a user's booked quantity is the order's times this


@dataclass(frozen=True, slots=True)
class UserDropped:
    """DELETE /users/{user}: every strategy the user dropped."""

    user: str
    dropped: list[BookChange]
    sequence: int | None  # the last written (each dropped strategy has its own); null if none


@dataclass(frozen=True, slots=True)
class ProfilesApplied:
    """POST /profiles: the differences applied (or, with dry_run, that would be)."""

    dry_run: bool
    changes: list[BookChange]  # taken up, changed and dropped; not the unchanged
    unchanged: int
    sequence: int | None  # the last written (each change has its own); null if none


@dataclass(frozen=True, slots=True)
class UserSummary:
    """A user's strategies (as in the profile file) and open positions."""

    strategies: dict[str, Entry]
    open_positions: int


@dataclass(frozen=True, slots=True)
class UserState:
    """GET /users/{user}."""

    user: str
    strategies: dict[str, Entry]
    open_positions: int  # in every strategy, dropped ones included


@dataclass(frozen=True, slots=True)
class StrategySummary:
    """A strategy's users with their instruments, and its open positions."""

    users: dict[str, Entry]
    open_positions: int


@dataclass(frozen=True, slots=True)
class StrategyState:
    """GET /strategies/{strategy}."""

    strategy: str
    users: dict[str, Entry]
    open_positions: int  # of every user, those who dropped it included


def last_written(sequences: Iterable[int | None]) -> int | None:
    """The sequence of a request's answer, from its parts' (slices', writers'): the last
    written, None when none of them wrote anything."""
    return max((s for s in sequences if s is not None), default=None)


def joined(parts: list[ChangeAnswer]) -> ChangeAnswer:
    """The answers of a request's slices as one: each change keeps its slice's sequence."""
    return ChangeAnswer(
        unchanged=sum(p.unchanged for p in parts),
        sequence=last_written(p.sequence for p in parts),
        dry_run=parts[0].dry_run,
        changes=[c for p in parts for c in p.changes],
    )
