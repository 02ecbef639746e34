"""Running the HTTP app under uvicorn: on a host and port, or on the supervisor's socket."""

from __future__ import annotations

import signal
from pathlib import Path

import uvicorn

from ledger.bootstrap import Role
from ledger.http.app import create_app
from ledger.http.server import uvicorn_config
from ledger.settings import Settings


def run(
    settings: Settings,
    *,
    role: Role = "all",
    run_dir: Path | None = None,
    writers: int = 1,
    fd: int | None = None,
) -> int:
    """Serve until SIGTERM; 0 after a graceful stop."""
    app = create_app(settings, role=role, run_dir=run_dir, writers=writers)
    # uvicorn re-raises the signal that stopped it once it has shut down cleanly; a no-op
    # handler turns that into a normal return, so a graceful SIGTERM exits 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    # Idle and slow connections time out and cannot crowd out others: see ledger.http.server.
    config = uvicorn_config(
        app,
        host=settings.host,
        port=settings.port,
        fd=fd,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()
    return 0
