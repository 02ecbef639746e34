"""Importing a profile document: the differences from the ledger's books, recorded as events."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from ledger import changes
from ledger.answers import Profiles
from ledger.domain import Book
from ledger.user_answers import Change, ChangeRequest, Scope

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
    skipped: bool = False  # the file is the one last imported: nothing was compared

    @property
    def events(self) -> int:
        """How many book changes the import recorded."""
        return len(self.added) + len(self.changed) + len(self.dropped)


def digest(profiles: Profiles) -> str:
    """A profile document's content, as a digest: key order and whitespace do not count."""
    canonical = orjson.dumps(profiles, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def import_profiles(ledger: Ledger, profiles: Profiles, file_digest: str | None) -> ImportReport:
    """One attempt: compare, change the books in memory, save them in one transaction.

    With a `file_digest`, a document whose digest is the last one imported is not applied:
    changes made through the API since then stand.
    """
    roster = ledger.roster()
    if file_digest is not None and roster is not None and roster.file_digest == file_digest:
        return ImportReport(skipped=True)
    decided = changes.decide(ledger, ChangeRequest(Scope.ALL, profiles))
    report = ImportReport()
    groups = {Change.TAKEN_UP: report.added, Change.CHANGED: report.changed}
    for change in decided.changes:
        key = (change.user, change.strategy)
        groups.get(change.change, report.dropped).append(key)
        report.kept_open += [(*key, instrument) for instrument in change.kept_open]
    aggregates = list(decided.aggregates)
    if file_digest is not None:
        held = ledger.held_roster()
        held.file_imported(digest=file_digest)
        if not any(a is held for a in aggregates):
            aggregates.append(held)
    if aggregates:
        ledger.save(*aggregates)
    ledger.books_changed([a for a in aggregates if isinstance(a, Book)])
    for user, strategy, instrument in report.kept_open:
        log.warning(
            "profile no longer lists %s/%s/%s but its position is open: kept, SELL closes it",
            user,
            strategy,
            instrument,
        )
    return report
