"""No secret in any process's argv (which `ps` shows) or in the logs."""

from __future__ import annotations

import uuid
from pathlib import Path

import psutil
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.support import Server, free_port

PASSWORD = "s3cr3t-" + uuid.uuid4().hex[:8]  # trust auth ignores it; we only look for it
TOKEN = "t0ken-" + uuid.uuid4().hex[:8]


def test_the_database_password_and_the_token_stay_out_of_argv_and_logs(
    database_url: str, server_env: dict[str, str], profile_file: Path, tmp_path: Path
) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    env = {
        **server_env,
        "DATABASE_URL": make_conninfo(database_url, password=PASSWORD),
        "LEDGER_DB_SCHEMA": schema,
        "LEDGER_API_TOKEN": TOKEN,
    }
    args = ["--port", str(free_port()), "--profiles", str(profile_file), "--host", "127.0.0.1"]
    server = Server([*args, "--data-dir", str(tmp_path)], env, tmp_path / "server.log")
    server.start()
    try:
        assert server.proc is not None
        # The projector starts once the writers listen, so /health may answer before it runs.
        server.child("project")
        family = [psutil.Process(server.proc.pid), *psutil.Process(server.proc.pid).children()]
        assert len(family) >= 4  # supervisor, writer, worker, projector
        for process in family:
            command = " ".join(process.cmdline())
            assert PASSWORD not in command and TOKEN not in command, command
        assert server.stop() == 0
        logs = server.log.read_text() + "".join(
            p.read_text() for p in Path(env["LEDGER_LOG_DIR"]).glob("*.log")
        )
        assert "ledger ready" in logs or "ledger serving" in logs
        assert PASSWORD not in logs and TOKEN not in logs
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
