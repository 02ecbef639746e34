"""What the fenced overrides take from libraries' private parts still exists."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import overrides


def test_nothing_the_overrides_rely_on_has_moved() -> None:
    assert overrides.missing() == []


def test_pools_retry_a_lost_database_every_second() -> None:
    from psycopg_pool.base import AttemptWithBackoff

    from ledger.overrides import storage

    storage.steady_reconnects()
    attempt = AttemptWithBackoff(timeout=300)
    delays = []
    for now in range(10):
        attempt.update_delay(float(now))
        delays.append(attempt.delay)
    assert all(0.8 <= delay <= 1.2 for delay in delays), delays


def test_a_dead_postmasters_pid_file_is_reported_before_it_is_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from ledger.overrides import storage

    gone = subprocess.Popen(["true"])
    gone.wait()
    pid_file = tmp_path / storage.POSTMASTER_PID
    pid_file.write_text(f"{gone.pid}\n{tmp_path}\n")
    seen_while_reporting = []

    class Witness(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen_while_reporting.append(pid_file.exists())

    witness = Witness()
    logging.getLogger(storage.__name__).addHandler(witness)
    try:
        with caplog.at_level(logging.WARNING, logger=storage.__name__):
            assert storage.prepare(tmp_path) is True
    finally:
        logging.getLogger(storage.__name__).removeHandler(witness)
    # A process killed right after the removal must not take the only report with it.
    assert seen_while_reporting == [True]
    assert f"postmaster {gone.pid} had died (gone)" in caplog.text
    assert not pid_file.exists()
    assert storage.prepare(tmp_path) is False  # nothing left to clear, nothing said twice
    assert caplog.text.count("had died") == 1


@pytest.fixture
def postgres_named(tmp_path: Path) -> Iterator[int]:
    """A live process named postgres (cat under that name), standing in for initdb's backend."""
    (tmp_path / "postgres").symlink_to("/bin/cat")
    with subprocess.Popen([tmp_path / "postgres"], stdin=subprocess.PIPE) as proc:
        yield proc.pid  # leaving closes its stdin: it ends, and is waited for


def test_initdbs_backend_is_no_live_postmaster(tmp_path: Path, postgres_named: int) -> None:
    from ledger.overrides import storage

    # initdb's standalone backends write their pid negated (they are not in pgserver's list).
    (tmp_path / storage.POSTMASTER_PID).write_text(f"-{postgres_named}\n{tmp_path}\n")
    assert storage.live_postmaster(tmp_path) is None
    with pytest.raises(storage.StartBlocked, match=f"standalone postgres {postgres_named} "):
        storage.prepare(tmp_path)  # under the lock: someone else's initdb; not cleared
    assert (tmp_path / storage.POSTMASTER_PID).exists()


def test_a_dead_standalone_backends_pid_file_is_cleared(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from ledger.overrides import storage

    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / storage.POSTMASTER_PID).write_text(f"-{gone.pid}\n{tmp_path}\n")
    with caplog.at_level(logging.WARNING, logger=storage.__name__):
        assert storage.prepare(tmp_path) is True
    assert f"standalone postgres {gone.pid} had died (gone)" in caplog.text


@pytest.mark.parametrize("content", ["", "-", "0\n"], ids=["empty", "sign", "zero"])
def test_a_half_written_pid_file_names_no_postmaster(tmp_path: Path, content: str) -> None:
    from ledger.overrides import storage

    (tmp_path / storage.POSTMASTER_PID).write_text(content)  # as read while postgres writes it
    assert storage.live_postmaster(tmp_path) is None


def test_a_start_waits_for_pgservers_lock_a_bounded_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from pgserver.postgres_server import PostgresServer

    from ledger.overrides import storage

    # Another process holds the lock (fcntl locks do not exclude their own process).
    holding = [
        sys.executable,
        "-c",
        "import sys, fasteners; lock = fasteners.InterProcessLock(sys.argv[1]); "
        "lock.acquire(); print('held', flush=True); sys.stdin.read()",
        os.fsdecode(PostgresServer.lock_path),
    ]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
    with subprocess.Popen(holding, **pipes) as holder:  # leaving closes stdin: it lets go
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        with (
            caplog.at_level(logging.INFO, logger=storage.__name__),
            pytest.raises(storage.StartBlocked, match="held pgserver's start lock"),
        ):
            storage.prepare(tmp_path, wait=0.2)
        assert "waiting for another start to finish" in caplog.text
