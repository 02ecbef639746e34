"""Where the events live: an external PostgreSQL, or an embedded one under the data directory."""

from __future__ import annotations

import logging
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ledger.overrides import storage as overrides
from ledger.settings import Settings
from ledger.store.schema import take_creation_lock

log = logging.getLogger(__name__)


class DatabaseUnavailable(RuntimeError):
    """The database refused or could not take a connection when the ledger started."""


def describe(url: str) -> str:
    """user@host:port/dbname of a URL: where it points, without its password."""
    info = conninfo_to_dict(url)
    return (
        f"{info.get('user') or 'postgres'}@{info.get('host') or 'localhost'}"
        f":{info.get('port') or 5432}/{info.get('dbname') or 'postgres'}"
    )


class Database:
    """A PostgreSQL server to use, and the eventsourcing settings that point at it."""

    def __init__(self, url: str, schema: str, timeout: int, server: Any = None) -> None:
        self.url = url
        self.schema = schema
        self.timeout = timeout
        self._server = server
        self._revive_lock = threading.Lock()
        self._last_revive = 0.0

    def revive(self) -> None:
        """Start the embedded server again if its process has died (at most every 2 s)."""
        if self._server is None or not self._revive_lock.acquire(blocking=False):
            return
        try:
            if time.monotonic() - self._last_revive < 2:
                return
            self._last_revive = time.monotonic()
            cleared = overrides.ensure_running(self._server)
            if cleared:
                log.warning("embedded PostgreSQL: started it again")
        except Exception as failure:
            log.warning("could not restart the embedded PostgreSQL: %s", failure)
        finally:
            self._revive_lock.release()

    def running(self) -> bool:
        """False when the embedded server's postmaster has died (True for an external one)."""
        if self._server is None:
            return True
        # A zombie postmaster (killed, never reaped) counts as dead, unlike for pid_exists.
        return overrides.live_postmaster(Path(self._server.pgdata)) is not None

    @classmethod
    def open(cls, settings: Settings) -> Database:
        """Use DATABASE_URL when given, else start (or reuse) the embedded server."""
        overrides.steady_reconnects()
        server = None
        url = settings.database_url
        if url is None:
            with warnings.catch_warnings():
                # platformdirs warns at import that XDG_RUNTIME_DIR is unset (normal for a
                # service) and falls back to /tmp, which is what pgserver's lock needs.
                warnings.simplefilter("ignore")
                import pgserver  # noqa: PLC0415 - heavy, and only for the embedded default

            pgdata = (settings.data_dir / "pg").resolve()
            pgdata.mkdir(parents=True, exist_ok=True)
            # pgserver would take a killed postmaster's pid file (a zombie's) for a running
            # server, and postgres refuses to start over it: cleared first, said in one line.
            try:
                overrides.prepare(pgdata)
            except overrides.StartBlocked as blocked:
                msg = f"cannot start the embedded PostgreSQL under {pgdata}: {blocked}"
                raise DatabaseUnavailable(msg) from None
            # Asked after prepare(), which waits out another server's start (its initdb).
            before = overrides.live_postmaster(pgdata)
            server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
            url = str(server.get_uri())
            pid = server.get_pid()
            if pid == before:
                log.info(
                    "embedded PostgreSQL under %s: reusing the running postmaster %d", pgdata, pid
                )
            else:
                log.info("embedded PostgreSQL under %s: started postmaster %d", pgdata, pid)
        database = cls(url, settings.db_schema, settings.db_timeout, server)
        try:
            database.ensure_schema()
        except psycopg.OperationalError as error:
            # One line naming where, not a traceback from whichever process connected first.
            reason = str(error).strip().splitlines()[0]
            msg = f"cannot connect to PostgreSQL at {describe(url)}: {reason}"
            raise DatabaseUnavailable(msg) from None
        return database

    def conninfo(self) -> dict[str, Any]:
        """The connection parameters of the URL."""
        return conninfo_to_dict(self.url)

    def connect(self) -> psycopg.Connection[Any]:
        """A plain connection, for set-up and read models."""
        return psycopg.connect(self.url, connect_timeout=self.timeout, autocommit=True)

    def ensure_schema(self) -> None:
        """Create the schema the ledger writes to, when one is configured (and connect once)."""
        with self.connect() as conn:
            if self.schema:
                # IF NOT EXISTS is no guard against another process creating it at this moment.
                take_creation_lock(conn, self.schema)
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )

    def eventsourcing_env(self) -> dict[str, str]:
        """The environment eventsourcing's Postgres factory reads."""
        info = self.conninfo()
        return {
            "PERSISTENCE_MODULE": "ledger.store.factory:LedgerFactory",
            "POSTGRES_DBNAME": str(info.get("dbname") or "postgres"),
            "POSTGRES_HOST": str(info.get("host") or "localhost"),
            "POSTGRES_PORT": str(info.get("port") or "5432"),
            "POSTGRES_USER": str(info.get("user") or "postgres"),
            "POSTGRES_PASSWORD": str(info.get("password") or ""),
            "POSTGRES_SCHEMA": self.schema,
            "POSTGRES_CONNECT_TIMEOUT": str(self.timeout),
            "POSTGRES_LOCK_TIMEOUT": str(max(self.timeout, 5)),
            # One idle connection per pool, up to 8 under load: idle servers hold few.
            "POSTGRES_POOL_SIZE": "1",
            "POSTGRES_MAX_OVERFLOW": "7",
            # No ping per checkout: a dead connection fails its batch (503, client retries)
            # and the pool replaces it; a ping would cost a round trip on every commit.
            "POSTGRES_PRE_PING": "n",
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
            # A writer that dies mid-transaction must not keep the table lock.
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "5",
        }

    def close(self) -> None:
        """Stop the embedded server if this process was the last to use it."""
        if self._server is not None:
            overrides.release(self._server)
            self._server = None
