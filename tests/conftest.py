"""Real PostgreSQL for every test: the embedded server, and DATABASE_URL when it is set."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from psycopg import sql

from ledger.application import Ledger
from ledger.settings import Settings
from ledger.store.database import Database
from tests.support import BACKENDS, EXAMPLE_PROFILES, Server, free_port


@pytest.fixture(scope="session")
def embedded_url() -> Iterator[str]:
    """One embedded PostgreSQL for the session, under a temporary directory."""
    import pgserver

    # pgserver runs postgres as its own user when we are root: the directory must be reachable.
    base = Path(tempfile.mkdtemp(prefix="ledger-pg-"))
    base.chmod(0o755)
    server = pgserver.get_server(base / "pg", cleanup_mode="stop")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier, from its folder: unit, integration or e2e."""
    for item in items:
        tier = item.path.parent.name
        if tier in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, tier))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames:
        backends = ["embedded"] + (["external"] if os.environ.get("DATABASE_URL") else [])
        metafunc.parametrize("backend", backends, scope="session")


@pytest.fixture(scope="session")
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    """The URL of the PostgreSQL server under test."""
    if backend == "external":
        return os.environ["DATABASE_URL"]
    url: str = request.getfixturevalue("embedded_url")
    return url


@pytest.fixture
def schema(database_url: str) -> Iterator[str]:
    """A schema of its own for each test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def settings(database_url: str, schema: str, tmp_path: Path) -> Settings:
    """Settings pointing at the test's own schema."""
    return Settings(
        database_url=database_url,
        db_schema=schema,
        log_dir=tmp_path / "logs",
        data_dir=tmp_path,
        projections="thread",  # in process, so a failing projection shows in the test's log
    )


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    """The test's database, with its schema created."""
    db = Database.open(settings)
    yield db
    db.close()


@pytest.fixture
def make_ledger(database: Database) -> Iterator[Any]:
    """Build ledger instances on the test's schema (several act as several processes)."""
    made: list[Ledger] = []

    def make() -> Ledger:
        ledger = Ledger(env=database.eventsourcing_env())
        made.append(ledger)
        return ledger

    yield make
    for ledger in made:
        ledger.close()


@pytest.fixture
def ledger(make_ledger: Any) -> Ledger:
    """A ledger with the worked example's profiles imported."""
    instance: Ledger = make_ledger()
    instance.import_profiles(EXAMPLE_PROFILES)
    return instance


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    """The worked example's profiles as a user_profile.json file."""
    path = tmp_path / "user_profile.json"
    path.write_text(json.dumps(EXAMPLE_PROFILES))
    return path


@pytest.fixture
def server_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a server subprocess: its own logs, no inherited DATABASE_URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "DATABASE_URL"))}
    env["LEDGER_LOG_DIR"] = str(tmp_path / "logs")
    return env


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory the embedded server's own user can reach."""
    base = Path(tempfile.mkdtemp(prefix="ledger-data-"))
    base.chmod(0o755)
    yield base
    postmaster = base / "pg" / "postmaster.pid"
    if postmaster.exists():  # a failed test may leave the embedded server running
        pid = int(postmaster.read_text().split()[0])
        if psutil.pid_exists(pid):
            os.kill(pid, signal.SIGQUIT)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def make_server(
    data_dir: Path, profile_file: Path, server_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[[str], Server]]:
    """Start servers on the embedded default, or on DATABASE_URL in a schema of their own."""
    made: list[Server] = []
    schemas: list[str] = []

    def make(backend: str) -> Server:
        env = dict(server_env)
        args = ["--port", str(free_port()), "--profiles", str(profile_file)]
        args += ["--data-dir", str(data_dir), "--host", "127.0.0.1"]
        if backend == "external":
            schemas.append(f"t_{uuid.uuid4().hex[:12]}")
            env["DATABASE_URL"] = os.environ["DATABASE_URL"]
            env["LEDGER_DB_SCHEMA"] = schemas[-1]
        srv = Server(args, env, tmp_path / f"server-{len(made)}.log")
        made.append(srv)
        srv.start()
        return srv

    yield make
    for srv in made:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.kill()
    for schema in schemas:
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest, make_server: Callable[[str], Server]) -> Server:
    """A running server on each backend under test."""
    return make_server(request.param)


@pytest.fixture
def embedded_server(make_server: Callable[[str], Server]) -> Server:
    """A running server on the embedded default database."""
    return make_server("embedded")
