"""What the server's processes share: where they find each other, their environment, and how
a child dies with its parent. Light on purpose: the supervisor imports it, and little else."""

from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path

from ledger.settings import Settings

PROJECTOR = "projector.pid"  # in the run directory: the projector process, for /health


def writer_socket(run_dir: Path, partition: int) -> Path:
    """The socket of the writer process owning one partition of the strategies."""
    return run_dir / f"writer-{partition}.sock"


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of the projection process: the server's settings, not its DATABASE_URL."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # the URL is an argument
    env.update(
        LEDGER_DB_SCHEMA=settings.db_schema,
        LEDGER_LOG_DIR=str(settings.log_dir),
        LEDGER_LOG_LEVEL=settings.log_level,
        LEDGER_FAULTS=settings.faults,
        LEDGER_PROJECTION_WINDOW=str(settings.projection_window),
    )
    return env


def die_with_parent(parent: int | None = None) -> None:
    """In a child, before exec: SIGTERM when the parent dies; stop signals not blocked."""
    # A parent that takes its stop signals with sigwait() blocks them; children inherit that.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    # Linux: have the kernel send SIGTERM to the child when the server dies.
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    if parent is not None and os.getppid() != parent:
        os._exit(1)  # the parent died before prctl: nobody would stop this child
