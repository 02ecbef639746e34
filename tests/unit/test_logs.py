"""Logs go to logs/log_YYYY-MM-DD.log and stderr; order decisions and pgserver to the file only."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from ledger import logs
from ledger.user_answers import BookChange, Change, ChangeAnswer, ChangeOutcome
from ledger.writer import change_lines


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo configure(), back to logging as it is before any configure()."""
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ledger", False):
            root.removeHandler(handler)
            handler.close()
    # A closed file handler left on a logger would open its file again, and leak it, at the
    # next record: the embedded server's session fixture logs through "pgserver".
    for name in ("ledger.orders", "ledger.changes", "pgserver"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True


@pytest.mark.usefixtures("restore_logging")
def test_daily_file_and_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(tmp_path, "INFO")
    logging.getLogger("ledger.test").warning("database unreachable: %s", "boom")
    logging.getLogger("ledger.orders").info("order_id=o1 response=ACCEPTED")
    path = tmp_path / f"log_{date.today().isoformat()}.log"
    text = path.read_text()
    assert "database unreachable: boom" in text
    assert "order_id=o1 response=ACCEPTED" in text
    err = capsys.readouterr().err
    assert "database unreachable: boom" in err
    assert "order_id=o1" not in err


@pytest.mark.usefixtures("restore_logging")
def test_embedded_postgres_output_goes_to_the_file_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(tmp_path, "INFO")
    pgserver = logging.getLogger("pgserver")  # the name pgserver logs initdb and pg_ctl under
    pgserver.info("Running commandline:\n%s", ["initdb", "-D", "pg"])
    pgserver.error("Failed to start server.\nShowing contents of postgres server log")
    text = (tmp_path / f"log_{date.today().isoformat()}.log").read_text()
    assert "pgserver: Running commandline:\n" in text  # every line with its own prefix
    assert "pgserver: ['initdb', '-D', 'pg']" in text
    assert "Failed to start server." in text
    err = capsys.readouterr().err
    assert "Running commandline" not in err
    assert "initdb" not in err
    # an embedded server that does not start still says why on the terminal
    assert "Failed to start server." in err


def test_a_batch_of_order_lines_is_one_line_each(tmp_path: Path) -> None:
    logs.configure(tmp_path, stderr=False)
    logging.getLogger("ledger.orders").info("order_id=a seq=1\norder_id=b seq=2")
    lines = (tmp_path / f"log_{date.today().isoformat()}.log").read_text().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == ["order_id=a seq=1", "order_id=b seq=2"]
    assert all(" INFO ledger.orders: " in line for line in lines)


@pytest.mark.usefixtures("restore_logging")
def test_client_input_cannot_forge_or_overwrite_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(tmp_path, "INFO")
    forged = "/docs/x\r2026-12-07 23:59:59,000 ERROR ledger.writer: FORGED\x1b[31mRED\u202e"
    logging.getLogger("ledger.http.server").info("went away before its answer to GET %s", forged)
    path = tmp_path / f"log_{date.today().isoformat()}.log"
    (line,) = path.read_text(encoding="utf-8").splitlines()  # splits on \r too, as Python does
    assert line.endswith(
        "GET /docs/x\\r2026-12-07 23:59:59,000 ERROR ledger.writer: FORGED\\u001b[31mRED\\u202e"
    )
    assert line.isprintable()
    assert capsys.readouterr().err.rstrip("\n").isprintable()
    # A traceback keeps its lines.
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("ledger.test").exception("failed")
    assert "Traceback (most recent call last):\n" in path.read_text(encoding="utf-8")


@pytest.mark.usefixtures("restore_logging")
def test_a_change_is_one_terminal_line_and_a_file_line_per_book(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A profile document may change 90,000 books: one record each held the writer for seconds.
    logs.configure(tmp_path, "INFO")
    # Committed in two slices, at 57 and 58: each change has its own sequence.
    books = [
        BookChange(f"u{n}", "STRATEGY_A", ["ACC"], Change.TAKEN_UP, [], sequence=57 + n // 500)
        for n in range(1000)
    ]
    books.append(BookChange("u\x1b[2J", "STRATEGY_B", [], Change.DROPPED, ["INFY"], "1", 58))
    books.append(BookChange("same", "STRATEGY_C", ["ACC"], Change.UNCHANGED, []))
    dry = ChangeAnswer(0, None, dry_run=True, changes=[books[0]])
    change_lines(
        [ChangeOutcome(ChangeAnswer(1, 58, dry_run=False, changes=books)), ChangeOutcome(dry)]
    )
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": ", 1)[1] for line in err] == [
        "1001 book(s) changed at 57-58: 1 dropped, 1000 taken_up"
    ]
    lines = (tmp_path / f"log_{date.today().isoformat()}.log").read_text().splitlines()
    books_logged = [line.split(": ", 1)[1] for line in lines if " ledger.changes: " in line]
    assert len(books_logged) == 1001
    assert books_logged[0] == "taken_up u0/STRATEGY_A at 57: ['ACC']"
    assert books_logged[500] == "taken_up u500/STRATEGY_A at 58: ['ACC']"
    assert books_logged[-1] == "dropped \"u\\u001b[2J\"/STRATEGY_B at 58: []; kept open ['INFY']"
