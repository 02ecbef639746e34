"""Logs go to logs/log_YYYY-MM-DD.log and stderr; order decisions to the file only."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest

from ledger import logs


def test_daily_file_and_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(tmp_path, "INFO")
    try:
        logging.getLogger("ledger.test").warning("database unreachable: %s", "boom")
        logging.getLogger("ledger.orders").info("order_id=o1 response=ACCEPTED")
        path = tmp_path / f"log_{date.today().isoformat()}.log"
        text = path.read_text()
        assert "database unreachable: boom" in text
        assert "order_id=o1 response=ACCEPTED" in text
        err = capsys.readouterr().err
        assert "database unreachable: boom" in err
        assert "order_id=o1" not in err
    finally:
        for handler in list(logging.getLogger().handlers):
            if getattr(handler, "_ledger", False):
                logging.getLogger().removeHandler(handler)
                handler.close()
