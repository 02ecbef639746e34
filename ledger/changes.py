"""A change of users' strategies: its differences from the books held, applied in memory."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ledger.amounts import ONE
from ledger.domain import Book
from ledger.user_answers import BookChange, Change, ChangeRequest, Entry, Scope, parts
from ledger.wire import partition

if TYPE_CHECKING:
    from ledger.application import Ledger

Key = tuple[str, str]  # (user, strategy)
Wanted = tuple[list[str], str]  # (instruments, multiplier)


@dataclass
class Decided:
    """What a change request does: its book changes, and the aggregates holding their events."""

    changes: list[BookChange] = field(default_factory=list)
    unchanged: int = 0
    aggregates: list[Any] = field(default_factory=list)  # in the order their events are stored
    read: list[tuple[Book, int]] = field(default_factory=list)  # books read, at that version
    rest: ChangeRequest | None = None  # the books left for the next slices, if any


def owned(request: ChangeRequest, strategy: str) -> bool:
    """Whether a strategy is in the request's writer partition."""
    return request.partitions == 1 or (partition(strategy, request.partitions) == request.partition)


def listed(request: ChangeRequest) -> list[Key]:
    """The books the request lists, in its scope and partition, in its order."""
    found: list[Key] = []
    for user, strategies in request.profiles.items():
        if request.scope is not Scope.ALL and user != request.user:
            continue
        for strategy in strategies:
            if request.scope is Scope.BOOK and strategy != request.strategy:
                continue
            if owned(request, strategy):
                found.append((user, strategy))
    return found


def wanted(request: ChangeRequest) -> dict[Key, Wanted]:
    """The books the request wants, in its scope and partition; instruments deduplicated."""
    return {(u, s): _wanted(request.profiles[u][s]) for u, s in listed(request)}


def _wanted(value: Entry) -> Wanted:
    instruments, multiplier = parts(value)
    return list(dict.fromkeys(instruments)), multiplier


def _sliced(
    ledger: Ledger, request: ChangeRequest, limit: int | None
) -> tuple[dict[Key, Wanted], list[Key], ChangeRequest | None]:
    """The books this slice decides, wanted and held, and the request for the rest.

    A change touching more than `limit` books (those it lists, and those it drops) is decided
    `limit` books at a time, each slice its own commit: a 90,000-book document was one commit
    of ~6 s that every order waited for (and a 503). The first slice finds every book to
    decide; the rest carry them (`keys`), the document itself kept as it came.
    """
    if request.keys is None:
        held = in_scope(ledger, request)
        if limit is None:
            return wanted(request), held, None
        keys = listed(request)
        if len(keys) + len(held) <= limit:  # touches at most `limit` books
            return wanted(request), held, None
        chosen = set(keys)
        keys += [k for k in held if k not in chosen]
    else:
        keys = request.keys
    now, left = (keys, []) if limit is None else (keys[:limit], keys[limit:])
    wants: dict[Key, Wanted] = {}
    held = []
    strategies: dict[str, set[str]] = {}
    for user, strategy in now:
        value = request.profiles.get(user, {}).get(strategy)
        if value is not None:
            wants[user, strategy] = _wanted(value)
        if user not in strategies:
            strategies[user] = set(ledger.strategies_of(user))
        if strategy in strategies[user]:
            held.append((user, strategy))
    return wants, held, replace(request, keys=left) if left else None


def in_scope(ledger: Ledger, request: ChangeRequest) -> list[Key]:
    """The books the ledger has in the request's scope and partition."""
    if request.scope is Scope.BOOK:
        keys = [(request.user, s) for s in ledger.strategies_of(request.user)]
        return [k for k in keys if k[1] == request.strategy]
    if request.scope is Scope.USER:
        keys = [(request.user, s) for s in ledger.strategies_of(request.user)]
    else:
        keys = ledger.book_keys()
    return [k for k in keys if owned(request, k[1])]


def kept_open(book: Book, instruments: list[str], active: bool) -> list[str]:
    """Open positions the book keeps although its list no longer has their instrument."""
    return [i for i in book.open if not active or i not in instruments]


def decide(ledger: Ledger, request: ChangeRequest, limit: int | None = None) -> Decided:
    """Compare the request with the books; unless a dry run, change the books in memory.

    With `limit`, at most that many books; `rest` is then the request for the others.
    """
    decided = Decided()
    wants, held, decided.rest = _sliced(ledger, request, limit)
    known = ledger.books_for(held)
    new_books: list[Book] = []
    changed: list[Book] = []
    for key, (instruments, multiplier) in wants.items():
        user, strategy = key
        if key not in known:
            decided.changes.append(
                BookChange(user, strategy, instruments, Change.TAKEN_UP, [], multiplier)
            )
            if not request.dry_run:
                new_books.append(Book.take_up(user, strategy, instruments, multiplier))
            continue
        book = known[key]
        decided.read.append((book, book.version))
        same_set = set(book.instruments) == set(instruments)
        if book.active and same_set and book.multiplier == multiplier:
            decided.unchanged += 1
            if request.scope is Scope.BOOK:
                # The instruments as held: the same set, maybe in another order.
                same = list(book.instruments)
                open_ = kept_open(book, same, True)
                decided.changes.append(
                    BookChange(user, strategy, same, Change.UNCHANGED, open_, multiplier)
                )
            continue
        how = Change.CHANGED if book.active else Change.TAKEN_UP
        open_ = kept_open(book, instruments, True)
        decided.changes.append(BookChange(user, strategy, instruments, how, open_, multiplier))
        if not request.dry_run:
            book.change_instruments(instruments=instruments, multiplier=multiplier)
            changed.append(book)
    for key in held:
        if key in wants:
            continue
        book = known[key]
        decided.read.append((book, book.version))
        if not book.active:
            continue  # dropped before: nothing to do, and not counted
        decided.changes.append(
            BookChange(*key, [], Change.DROPPED, kept_open(book, [], False), ONE)
        )
        if not request.dry_run:
            book.drop()
            changed.append(book)
    decided.aggregates = [*new_books, *changed]
    if new_books:
        roster = ledger.held_roster()
        roster.add_books(books=[[b.user, b.strategy] for b in new_books])
        decided.aggregates.append(roster)
        ledger.took_up(new_books)
    return decided
