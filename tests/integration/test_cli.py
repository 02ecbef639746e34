"""The command line: profiles, and the read models as terminal tables."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg import sql

from ledger.answers import OrderRequest
from ledger.application import Ledger
from ledger.cli import main
from ledger.domain import Position
from ledger.settings import Settings
from ledger.store.database import Database
from projections.replay import replay
from projections.runner import open_view, projector_lock
from tests.support import ROOT, free_port

RAW = ROOT / "jsons" / "raw_details.json"


def test_generate_profiles_keeps_the_original_shape(tmp_path: Path) -> None:
    out = tmp_path / "user_profile.json"
    assert main(["generate-profiles", "--raw", str(RAW), "--out", str(out), "--seed", "7"]) == 0
    profiles = json.loads(out.read_text())
    raw = json.loads(RAW.read_text())
    assert len(profiles) == 3
    for user, strategies in profiles.items():
        assert user in raw["USERS"]
        assert 1 <= len(strategies) <= 7
        for strategy, instruments in strategies.items():
            assert strategy in raw["STRATEGIES"]
            assert 1 <= len(instruments) <= 10
            assert len(set(instruments)) == len(instruments)
            assert set(instruments) <= set(raw["INSTRUMENTS"])
    again = tmp_path / "again.json"
    main(["generate-profiles", "--raw", str(RAW), "--out", str(again), "--seed", "7"])
    assert again.read_text() == out.read_text()  # a seed makes it reproducible


def test_generate_profiles_refuses_too_many_users(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.json"
    assert main(["generate-profiles", "--raw", str(RAW), "--out", str(out), "--users", "21"]) == 2
    assert "between 1 and 20" in capsys.readouterr().err  # one of the 21 names is listed twice
    assert not out.exists()


@pytest.fixture
def store(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The options (and environment) that point a command at the test's store."""
    monkeypatch.setenv("LEDGER_DB_SCHEMA", settings.db_schema)
    monkeypatch.setenv("LEDGER_LOG_DIR", str(settings.log_dir))
    return ["--database-url", str(settings.database_url)]


def test_orders_and_positions_print_tables(
    ledger: Ledger,
    database: Database,
    store: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ledger.place_orders([OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "cli-buy")])
    ledger.place_orders([OrderRequest("STRATEGY_Z", "L&T", Position.SELL, "cli-other")])
    replay(database.eventsourcing_env(), database.url)  # build the read models

    assert main(["orders", *store]) == 0
    out = capsys.readouterr().out
    assert "cli-buy" in out and "cli-other" in out and "L&T" in out
    assert "Holland Proctor" in out

    assert main(["orders", "--status", "REJECTED", *store]) == 0
    out = capsys.readouterr().out
    assert "cli-other" in out and "cli-buy" not in out

    assert main(["positions", "--user", "Holland Proctor", *store]) == 0
    out = capsys.readouterr().out
    assert "MINDA" in out and "cli-buy" in out and "(1 positions)" in out

    assert main(["positions", "--user", "Kamryn Li", *store]) == 0
    assert "(0 positions)" in capsys.readouterr().out

    # Kamryn Li's ACC and Holland Proctor's ACC and MINDA: pages of one, by cursor.
    ledger.place_orders([OrderRequest("STRATEGY_B", "ACC", Position.BUY, "cli-acc")])
    replay(database.eventsourcing_env(), database.url)
    shown, after = [], []
    while True:
        assert main(["positions", "--limit", "1", *after, *store]) == 0
        out = capsys.readouterr().out
        shown.append(next(n for n in ("MINDA", "ACC") if n in out))
        cursor = re.search(r"more after --after (\S+)\)", out)
        if cursor is None:
            break
        after = ["--after", cursor.group(1)]
    assert shown == ["ACC", "MINDA", "ACC"]
    with pytest.raises(SystemExit):
        main(["positions", "--after", "not-a-cursor", *store])


def test_project_runs_the_projections_alone(
    ledger: Ledger, database: Database, settings: Settings
) -> None:
    (outcome,) = ledger.place_orders([OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "p1")])
    env = {**os.environ, "LEDGER_DB_SCHEMA": settings.db_schema}
    env["LEDGER_LOG_DIR"] = str(settings.log_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "project", "--database-url", database.url],
        env=env,
        cwd=ROOT,
    )
    view = open_view(database.eventsourcing_env())
    try:
        view.wait(Ledger.name, outcome.answer.sequence, timeout=60)
        rows = view.query(sql.SQL("SELECT order_id FROM {0}").format(view.tables["orders"]), [])
        assert [r["order_id"] for r in rows] == ["p1"]
    finally:
        proc.terminate()
        proc.terminate()  # a second SIGTERM (the server's, and the kernel's on its death)
        assert proc.wait(timeout=30) == 0
        view.datastore.close()


def test_replay_refuses_without_a_progress_bar_while_a_server_projects(
    ledger: Ledger,
    database: Database,
    store: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ledger.place_orders([OrderRequest("STRATEGY_B", "MINDA", Position.BUY, "r1")])
    command = ["replay", *store]

    # Holding the projector's lock is what a running server (or `ledger project`) does.
    with projector_lock(database.url, database.eventsourcing_env()) as lock_conn:
        assert lock_conn is not None
        assert main(command) == 1
    refused = capsys.readouterr()
    assert "a running server keeps the read models" in refused.err
    for bar in ("replay:", "ev/s", "%|"):
        assert bar not in refused.err and bar not in refused.out
    assert "replayed" not in refused.out

    assert main(command) == 0
    done = capsys.readouterr()
    assert "replayed" in done.out
    assert "ev/s" in done.err  # the bar the refusal did not draw, so the checks above can fail


def test_replay_of_an_empty_store_says_so(
    database: Database, store: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # A misspelt LEDGER_DB_SCHEMA names a store with no events: not a success.
    assert main(["replay", "--quiet", *store]) == 1
    said = capsys.readouterr()
    assert "holds no events: nothing replayed" in said.err
    assert f"schema {database.schema}" in said.err
    assert "replayed" not in said.out


def _ledger(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if " WARNING " not in line]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://postgres:hunter2@127.0.0.1:1/postgres", "Connection refused"),
        ("postgresql://no_such_role:hunter2@127.0.0.1:5432/postgres", 'role "no_such_role"'),
    ],
)
@pytest.mark.parametrize("command", ["serve", "replay", "project", "orders"])
def test_a_database_that_cannot_be_reached_is_one_line(
    command: str, url: str, reason: str, tmp_path: Path
) -> None:
    args = ["--port", str(free_port()), "--host", "127.0.0.1"] if command == "serve" else []
    scratch = tmp_path / "tmp"  # where `serve` makes its run directory
    scratch.mkdir()
    env = {"DATABASE_URL": url, "LEDGER_LOG_DIR": str(tmp_path / "logs"), "TMPDIR": str(scratch)}
    done = _ledger(command, *args, env=env, cwd=tmp_path)
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert line.startswith("ledger: cannot connect to PostgreSQL at ")
    assert reason in line
    assert "hunter2" not in done.stderr
    assert list(scratch.iterdir()) == []  # the run directory is not left behind


@pytest.mark.parametrize(
    "url", ["not a url", "postgresql://me:hunter2@[::1/db", "host=h password=hunter2 junk"]
)
def test_a_malformed_database_url_is_refused_without_its_password(url: str, tmp_path: Path) -> None:
    done = _ledger("replay", env={"DATABASE_URL": url}, cwd=tmp_path)
    assert done.returncode == 2
    line = _one_line(done.stderr)
    assert line.startswith("ledger: DATABASE_URL (--database-url) is not a PostgreSQL URL")
    assert "hunter2" not in done.stderr


@pytest.mark.parametrize("command", ["serve", "replay"])
def test_a_log_directory_that_cannot_be_written_is_one_line(command: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = _ledger(command, env={"LEDGER_LOG_DIR": str(blocker / "logs")}, cwd=tmp_path)
    assert done.returncode == 1
    assert _one_line(done.stderr).startswith(f"ledger: LEDGER_LOG_DIR '{blocker / 'logs'}' cannot")


def test_a_misspelt_setting_stops_the_server_before_it_listens(tmp_path: Path) -> None:
    env = {"LEDGER_API_TOKNE": "s3cret", "LEDGER_PORT": str(free_port())}
    done = _ledger("serve", "--host", "127.0.0.1", env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert _one_line(done.stderr) == (
        "ledger: LEDGER_API_TOKNE is not a setting (did you mean LEDGER_API_TOKEN?)"
    )
    assert "s3cret" not in done.stderr
