"""Logging set-up: one file per day in the log directory, and stderr."""

from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class DailyFileHandler(logging.Handler):
    """Writes to <dir>/log_YYYY-MM-DD.log, switching file when the date changes."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._day: date | None = None
        self._stream: logging.FileHandler | None = None

    def path_for(self, day: date) -> Path:
        """The file that holds one day's lines."""
        return self.directory / f"log_{day.isoformat()}.log"

    def emit(self, record: logging.LogRecord) -> None:
        today = date.today()
        if today != self._day or self._stream is None:
            if self._stream is not None:
                self._stream.close()
            self._stream = logging.FileHandler(self.path_for(today), encoding="utf-8")
            self._stream.setFormatter(self.formatter)
            self._day = today
        self._stream.emit(record)

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        super().setFormatter(fmt)
        if self._stream is not None:
            self._stream.setFormatter(fmt)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        super().close()


def configure(log_dir: Path, level: str = "INFO", *, stderr: bool = True) -> None:
    """Send the ledger's logs to the daily file and to stderr (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ledger", False):
            root.removeHandler(handler)
            handler.close()
    formatter = logging.Formatter(FORMAT)
    handlers: list[logging.Handler] = [DailyFileHandler(log_dir)]
    if stderr:  # terminal commands keep their output readable; the file still gets it all
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._ledger = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # The per-order decision lines go to the daily file only: thousands a second on a
    # terminal help nobody and cost the server time.
    orders = logging.getLogger("ledger.orders")
    orders.handlers = [handlers[0]]
    orders.propagate = False
    # The embedded PostgreSQL's initdb and pg_ctl output (dozens of lines at every start) goes
    # to the file only too; its errors still reach the terminal, as they carry the server's
    # own log, which the exception pgserver raises after them does not.
    pgserver = logging.getLogger("pgserver")
    pgserver.handlers = [handlers[0]]
    if stderr:
        errors = logging.StreamHandler(sys.stderr)
        errors.setFormatter(formatter)
        errors.setLevel(logging.WARNING)
        pgserver.handlers.append(errors)
    pgserver.propagate = False
    # Per-request access lines would drown the per-order lines under load.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
