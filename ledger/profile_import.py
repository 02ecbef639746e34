"""Importing a profile document: the differences from the ledger's books, recorded as events."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ledger.answers import Profiles
from ledger.domain import Book, Roster

if TYPE_CHECKING:
    from ledger.application import Ledger

log = logging.getLogger(__name__)


@dataclass
class ImportReport:
    """What an import of a profile document changed."""

    added: list[tuple[str, str]] = field(default_factory=list)
    changed: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    kept_open: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def events(self) -> int:
        """How many book changes the import recorded."""
        return len(self.added) + len(self.changed) + len(self.dropped)


def import_profiles(ledger: Ledger, profiles: Profiles) -> ImportReport:
    """One attempt: compare, change the books in memory, save them in one transaction."""
    report = ImportReport()
    roster = ledger.roster() or Roster()
    known = set(roster.books)
    wanted = {
        (user, strategy): list(dict.fromkeys(instruments))
        for user, strategies in profiles.items()
        for strategy, instruments in strategies.items()
    }
    changed: list[Book] = []
    new_books: list[list[str]] = []
    for (user, strategy), instruments in wanted.items():
        if (user, strategy) not in known:
            changed.append(Book(user=user, strategy=strategy, instruments=instruments))
            new_books.append([user, strategy])
            report.added.append((user, strategy))
            continue
        book = ledger.book(Book.create_id(user, strategy))
        if not book.active or set(book.instruments) != set(instruments):
            book.change_instruments(instruments=instruments)
            changed.append(book)
            report.changed.append((user, strategy))
    for user, strategy in roster.books:
        if (user, strategy) in wanted:
            continue
        book = ledger.book(Book.create_id(user, strategy))
        if book.active:
            book.drop()
            changed.append(book)
            report.dropped.append((user, strategy))
    for book in changed:
        for instrument in book.open:
            if instrument not in book.instruments or not book.active:
                report.kept_open.append((book.user, book.strategy, instrument))
    if new_books:
        roster.add_books(books=new_books)
    if changed or new_books:
        ledger.save(roster, *changed)
    ledger.books_changed(changed)
    for user, strategy, instrument in report.kept_open:
        log.warning(
            "profile no longer lists %s/%s/%s but its position is open: kept, SELL closes it",
            user,
            strategy,
            instrument,
        )
    return report
