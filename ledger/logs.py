"""Logging set-up: one file per day in the log directory, and stderr; the per-order line; lines
that would flood written once a minute."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.answers import OrderAnswer

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_PLAIN = re.compile(r'[^ ="\\]+')  # with isprintable(): a value that needs no quotes
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def logfmt(value: object) -> str:
    """One logfmt value: bare when it is plain, else quoted with escapes."""
    text = str(value)
    # A space, "=" or quote inside a bare value would let it forge a field of its own, and a
    # control character a line; names are client input, so only plain ones go bare.
    if text.isprintable() and _PLAIN.fullmatch(text):
        return text
    return '"' + "".join(map(_escaped, text)) + '"'


def order_line(answer: OrderAnswer, reused_id: bool) -> str:
    """The per-decision line of the ledger.orders log, in logfmt."""
    line = (
        f"order_id={logfmt(answer.order_id)} seq={answer.sequence}"
        f" strategy={logfmt(answer.strategy)} instrument={logfmt(answer.instrument)}"
        f" position={logfmt(answer.position)} response={logfmt(answer.RESPONSE)}"
        f" accepted={len(answer.accepted_for)} rejected={len(answer.rejected_for)}"
    )
    return line + " order_id_reused=yes" if reused_id else line


class LogDirError(ValueError):
    """The log directory cannot be created or written."""


class DailyFileHandler(logging.Handler):
    """Writes to <dir>/log_YYYY-MM-DD.log, switching file when the date changes."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self._day: date | None = None
        self._stream: logging.FileHandler | None = None
        try:  # now, not at the first line: a directory that cannot take the log is one error
            self.directory.mkdir(parents=True, exist_ok=True)
            with self.path_for(date.today()).open("a", encoding="utf-8"):
                pass
        except OSError as error:
            msg = (
                f"LEDGER_LOG_DIR {str(directory)!r} cannot hold the log: {error.strerror or error}"
            )
            raise LogDirError(msg) from None

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


def _visible(char: str) -> str:
    if char == "\n" or char.isprintable():
        return char
    return _escaped(char)


class EachLine(logging.Formatter):
    """Every line of a message gets the prefix: a batch of order lines logged at once.

    Any other character that is not printable is written as an escape: a carriage return or a
    terminal escape sequence in client input (a request path, say) could otherwise overwrite or
    forge a line on a terminal or for a reader that splits on it.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        return line if line.isprintable() else "".join(map(_visible, line))

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if "\n" not in message or record.exc_info:
            return super().format(record)
        first, *rest = message.split("\n")
        head = super().format(logging.makeLogRecord({**record.__dict__, "msg": first, "args": ()}))
        prefix = head[: len(head) - len(first)]
        return head + "".join(f"\n{prefix}{line}" for line in rest)


def configure(log_dir: Path, level: str = "INFO", *, stderr: bool = True) -> None:
    """Send the ledger's logs to the daily file and to stderr (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ledger", False):
            root.removeHandler(handler)
            handler.close()
    formatter = EachLine(FORMAT)
    handlers: list[logging.Handler] = [DailyFileHandler(log_dir)]
    if stderr:  # terminal commands keep their output readable; the file still gets it all
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._ledger = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # The per-order decision lines go to the daily file only: thousands a second on a
    # terminal help nobody and cost the server time. So do the per-book change lines: a
    # profile document can change 90,000 books (the terminal gets one line per document).
    for name in ("ledger.orders", "ledger.changes"):
        lines = logging.getLogger(name)
        lines.handlers = [handlers[0]]
        lines.propagate = False
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


class Throttled:
    """A log line written at most once a minute, with how often it happened since the last
    such line (a line each let a flood of clients write thousands); the last minute's count
    is written when that minute ends. `message` takes {count} and {detail}."""

    EVERY = 60.0

    def __init__(
        self,
        message: str,
        clock: Callable[[], float] = time.monotonic,
        later: Callable[[float, Callable[[], None]], object] | None = None,
        *,
        logger: logging.Logger,
        level: int = logging.WARNING,
    ) -> None:
        self.message, self.logger, self.level = message, logger, level
        self.clock, self.later = clock, later  # later: the running loop's call_later
        self.since = 0
        self.detail: Any = None
        self.last = -self.EVERY
        self.pending = False

    def happened(self, detail: Any = None) -> None:
        """Count one more; `detail` is what the next line shows (the last given)."""
        self.since += 1
        self.detail = detail
        now = self.clock()
        if now - self.last >= self.EVERY:
            self._write(now)
        elif not self.pending:
            self.pending = True
            later = self.later or asyncio.get_running_loop().call_later
            later(self.last + self.EVERY - now, self._flush)

    def _flush(self) -> None:
        self.pending = False
        if self.since:
            self._write(self.clock())

    def _write(self, now: float) -> None:
        self.logger.log(self.level, self.message.format(count=self.since, detail=self.detail))
        self.since, self.last = 0, now
