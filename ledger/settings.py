"""Configuration, read once from the environment and passed down explicitly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A configuration value is not usable."""


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        msg = f"{key} must be an integer, got {raw!r}"
        raise SettingsError(msg) from None


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to know about its surroundings."""

    host: str = "0.0.0.0"  # noqa: S104 - the service is meant to be reached
    port: int = 8080
    profiles: Path | None = None
    data_dir: Path = Path("data")
    database_url: str | None = None
    db_schema: str = ""
    log_dir: Path = Path("logs")
    log_level: str = "INFO"
    max_batch: int = 1000
    db_timeout: int = 2
    projections: str = "process"  # process | thread | off
    api_token: str | None = None
    faults: str = ""  # test-only: see ledger.faults
    body_timeout: int = 10  # seconds a client may take to send a request body
    answer_timeout: float = 4.5  # seconds an order may wait for its commit before a 503

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read LEDGER_* and DATABASE_URL; keyword overrides (from the CLI) win when not None."""
        env = os.environ if env is None else env
        profiles = env.get("LEDGER_PROFILES")
        settings = cls(
            host=env.get("LEDGER_HOST", cls.host),
            port=_int(env, "LEDGER_PORT", cls.port),
            profiles=Path(profiles) if profiles else None,
            data_dir=Path(env.get("LEDGER_DATA_DIR", str(cls.data_dir))),
            database_url=env.get("DATABASE_URL") or None,
            db_schema=env.get("LEDGER_DB_SCHEMA", ""),
            log_dir=Path(env.get("LEDGER_LOG_DIR", str(cls.log_dir))),
            log_level=env.get("LEDGER_LOG_LEVEL", cls.log_level).upper(),
            max_batch=_int(env, "LEDGER_MAX_BATCH", cls.max_batch),
            db_timeout=_int(env, "LEDGER_DB_TIMEOUT", cls.db_timeout),
            projections=env.get("LEDGER_PROJECTIONS", cls.projections).lower(),
            api_token=env.get("LEDGER_API_TOKEN") or None,
            faults=env.get("LEDGER_FAULTS", ""),
            body_timeout=_int(env, "LEDGER_BODY_TIMEOUT", cls.body_timeout),
            answer_timeout=_int(env, "LEDGER_ANSWER_TIMEOUT", 0) or cls.answer_timeout,
        )
        chosen = {k: v for k, v in overrides.items() if v is not None}
        settings = replace(settings, **chosen)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse values that would only fail later and less clearly."""
        if not 0 < self.port < 65536:
            msg = f"port must be 1-65535, got {self.port}"
            raise SettingsError(msg)
        if self.max_batch < 1:
            msg = "LEDGER_MAX_BATCH must be at least 1"
            raise SettingsError(msg)
        if self.db_timeout < 1:
            msg = "LEDGER_DB_TIMEOUT must be at least 1 second"
            raise SettingsError(msg)
        if self.projections not in ("process", "thread", "off"):
            msg = f"LEDGER_PROJECTIONS must be process, thread or off, got {self.projections!r}"
            raise SettingsError(msg)
        if self.db_schema and not self.db_schema.replace("_", "").isalnum():
            msg = f"LEDGER_DB_SCHEMA must be letters, digits and _, got {self.db_schema!r}"
            raise SettingsError(msg)
