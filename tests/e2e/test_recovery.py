"""End to end: SIGKILL under concurrent load, restart, and replay; nothing acknowledged is lost."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support import BACKENDS, Server, check_read_models, run_load

CLIENTS = 4
KILL_AFTER = 120  # acknowledged orders before the kill


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_under_load_then_restart_and_replay(
    backend: str, make_server: Callable[[str], Server]
) -> None:
    server = make_server(backend)
    # Killed mid-flight: some orders are committed but never answered.
    acked = run_load([server.url], CLIENTS, KILL_AFTER, 0, server.kill)
    assert len(acked) >= KILL_AFTER

    server.start()
    live = check_read_models(server, acked)
    assert server.stop() == 0

    replayed = server.command("replay", "--quiet", *server.store_args())
    assert replayed.returncode == 0, replayed.stderr
    assert "events/s" in replayed.stdout

    server.start()
    assert check_read_models(server, acked) == live
    assert server.stop() == 0
