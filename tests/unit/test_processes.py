"""What the server's processes share, and what each of them loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.processes import child_env, writer_socket
from ledger.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def loaded(*modules: str) -> set[str]:
    """The modules a fresh interpreter holds after importing `modules`."""
    code = f"import sys, {', '.join(modules)}; print(__import__('json').dumps(list(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out))


def test_the_supervisor_loads_neither_the_application_nor_the_http_stack() -> None:
    # It lives as long as the service: what it imports stays resident (`make bench`: RSS).
    held = loaded("ledger.cli", "ledger.supervisor")
    assert not held & {"ledger.application", "ledger.bootstrap", "starlette", "httpx"}


@pytest.mark.parametrize(
    "role", ["ledger.http.worker", "ledger.writer_process", "projections.runner"]
)
def test_no_server_process_loads_the_http_client(role: str) -> None:
    # httpx is the command line's (produce, tail, users): ~4-7 MB in each process that loads it.
    assert not loaded("ledger.cli", role) & {"httpx", "httpx_sse"}


def test_children_get_the_settings_but_not_the_database_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://secret@db/ledger")
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    settings = Settings(db_schema="s1", log_dir=tmp_path, projection_window=0.05)
    env = child_env(settings)
    assert "DATABASE_URL" not in env  # it travels as an argument of its own
    assert env["SOMETHING_ELSE"] == "kept"
    assert (env["LEDGER_DB_SCHEMA"], env["LEDGER_LOG_DIR"]) == ("s1", str(tmp_path))
    assert env["LEDGER_PROJECTION_WINDOW"] == "0.05"
    assert writer_socket(tmp_path, 1) != writer_socket(tmp_path, 0)


def test_run_directories_of_killed_supervisors_are_swept(tmp_path: Path) -> None:
    from ledger.supervisor import OWNER, RUN_PREFIX, sweep_stale_runs

    runs = {name: tmp_path / (RUN_PREFIX + name) for name in ("killed", "alive", "new")}
    for run in runs.values():
        (run / "metrics").mkdir(parents=True)
    # Each owner file locked by a process of its own, as a supervisor holds its own.
    hold = (
        "import fcntl, sys, time; f = open(sys.argv[1], 'wb'); fcntl.flock(f, fcntl.LOCK_EX);"
        " print('locked', flush=True); time.sleep(60)"
    )
    holders = {}
    for name in ("killed", "alive"):
        holders[name] = subprocess.Popen(
            [sys.executable, "-c", hold, str(runs[name] / OWNER)], stdout=subprocess.PIPE, text=True
        )
        assert holders[name].stdout is not None
        assert holders[name].stdout.readline() == "locked\n"
    holders["killed"].kill()  # kill -9: its lock goes with it
    holders["killed"].wait()
    try:
        # "new" has no owner file yet: being made, left alone.
        assert sweep_stale_runs(tmp_path) == [runs["killed"]]
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            RUN_PREFIX + "alive",
            RUN_PREFIX + "new",
        ]
    finally:
        for holder in holders.values():
            holder.kill()
            holder.wait()
            assert holder.stdout is not None
            holder.stdout.close()
