"""Configuration, read once from the environment and passed down explicitly."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ledger.overrides.storage import MappingEnvSource

_PREFIX = "LEDGER_"
# user:password@ in a URL (to its last @), and password=... in a keyword string
_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^\s\"]*@|(password\s*=\s*)\S+")
_SECRET = {"database_url", "api_token"}  # never echoed in an error (a URL holds its password)
MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1, in bytes (ASCII here: characters)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_CLI = {
    "host",
    "port",
    "profiles",
    "data_dir",
    "database_url",
    "workers",
    "writers",
}  # fields `ledger` has options for


class SettingsError(ValueError):
    """A configuration value is not usable."""


class Settings(BaseSettings):
    """Everything the service needs to know about its surroundings."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=_PREFIX,
        validate_by_name=True,
        validate_by_alias=True,
    )

    host: str = "0.0.0.0"  # noqa: S104 - the service is meant to be reached
    port: int = Field(default=8080, ge=1, le=65535)
    profiles: Path | None = None
    data_dir: Path = Path("data")
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    db_schema: str = ""
    log_dir: Path = Path("logs")
    log_level: str = "INFO"
    max_batch: int = Field(default=1000, ge=1)
    db_timeout: int = Field(default=2, ge=1, le=3600)
    projections: Literal["process", "thread", "off"] = "process"
    api_token: str | None = None
    faults: str = ""  # test-only: see ledger.faults
    body_timeout: int = Field(default=10, ge=1)  # seconds a client may take to send a request body
    answer_timeout: float = Field(default=4.5, gt=0)  # seconds to wait for a commit, then 503
    workers: int | None = Field(default=None, ge=0, le=64)  # HTTP processes; None: the machine's
    writers: int = Field(default=1, ge=1, le=16)  # writer processes, strategies split by hash
    warm_up: bool = True  # load every book while the writer is idle after start
    stream_heartbeat: float = Field(default=15.0, gt=0)  # seconds between /stream comments
    # Streams open at once per HTTP process (past it: 503), well below its 4,096 connections.
    max_streams: int = Field(default=2000, ge=1, le=4000)
    # Seconds the projector lets events gather after a batch while they keep coming: bigger
    # batches cost less per order (see projections.runner), live reads wait longer.
    projection_window: float = Field(default=0.0, ge=0, le=1)

    if not TYPE_CHECKING:  # type checkers keep the field-by-field signature

        def __init__(self, **values: Any) -> None:
            try:
                super().__init__(**values)
            except ValidationError as error:
                raise SettingsError(_describe(error)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the arguments given: the environment is read by from_env alone."""
        # Tests build Settings directly while DATABASE_URL is set for the whole run.
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read LEDGER_* and DATABASE_URL; keyword overrides (from the CLI) win when not None."""
        env = os.environ if env is None else env
        _refuse_unknown(env)
        values = MappingEnvSource(cls, env)()
        return cls(**values).replace(**{k: v for k, v in overrides.items() if v is not None})

    def replace(self, **changes: Any) -> Settings:
        """A validated copy with some fields changed."""
        return type(self)(**{**self.model_dump(), **changes})

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value not in LOG_LEVELS:
            msg = f"must be one of {', '.join(LOG_LEVELS)}"
            raise ValueError(msg)
        return value

    @field_validator("projections", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("database_url", "api_token", mode="before")
    @classmethod
    def _none_if_empty(cls, value: Any) -> Any:
        return value or None

    @field_validator("database_url")
    @classmethod
    def _conninfo(cls, value: str | None) -> str | None:
        # Parsed now: a malformed URL is one line at start, not a traceback from a child.
        if value is not None:
            try:
                conninfo_to_dict(value)
            except psycopg.ProgrammingError as error:
                # psycopg may quote the whole URL: its password is masked.
                reason = _PASSWORD.sub(_masked, str(error).strip())
                msg = f"is not a PostgreSQL URL or connection string ({reason})"
                raise ValueError(msg) from None
        return value

    @field_validator("db_schema")
    @classmethod
    def _identifier(cls, value: str) -> str:
        # The schema name is spliced into DDL and search_path: keep it a plain identifier,
        # within PostgreSQL's 63 bytes (a longer one is cut silently: two settings would
        # share one store, each projector holding its own lock on it).
        if value and not (
            value.isascii() and value.replace("_", "").isalnum() and not value[0].isdigit()
        ):
            msg = "must be ASCII letters, digits and _, not starting with a digit"
            raise ValueError(msg)
        if len(value) > MAX_IDENTIFIER:
            msg = f"must be at most {MAX_IDENTIFIER} characters"
            raise ValueError(msg)
        return value


def _masked(found: re.Match[str]) -> str:
    return f"{found[1]}***@" if found[1] else f"{found[2]}***"


def _known_variables() -> list[str]:
    """Every environment variable a setting is read from."""
    return [_variable(field).split(" ")[0] for field in Settings.model_fields]


def _refuse_unknown(env: Mapping[str, str]) -> None:
    """A LEDGER_* variable that sets nothing is a mistake: say so rather than run without it.

    A misspelt LEDGER_API_TOKEN would otherwise leave the API open without a word.
    """
    known = _known_variables()
    for name in sorted(env):
        if not name.upper().startswith(_PREFIX) or name in known:
            continue
        close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else f"; the settings are {', '.join(known)}"
        msg = f"{name} is not a setting{hint}"
        raise SettingsError(msg)


def _variable(field: str) -> str:
    """The environment variable (and `ledger` option) that sets a field."""
    name = "DATABASE_URL" if field.lower() == "database_url" else _PREFIX + field.upper()
    return f"{name} (--{field.lower().replace('_', '-')})" if field.lower() in _CLI else name


def _problem(error: ErrorDetails) -> str:
    """What a value must be, in the words of the old hand-written checks."""
    ctx = error.get("ctx", {})
    match error["type"]:
        case "int_parsing" | "int_from_float" | "int_type":
            return "must be an integer"
        case "float_parsing" | "float_type":
            return "must be a number"
        case "greater_than_equal":
            return f"must be at least {ctx['ge']}"
        case "less_than_equal":
            return f"must be at most {ctx['le']}"
        case "greater_than":
            return f"must be more than {ctx['gt']}"
        case "literal_error":
            return f"must be {ctx['expected']}"
        case "value_error":
            return str(ctx["error"])
        case _:
            return f"is not valid: {error['msg']}"


def _describe(error: ValidationError) -> str:
    """One line naming the variable of the first problem, and the value it had."""
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "settings"
    if first["type"] == "extra_forbidden":
        return f"{field!r} is not a setting"
    if field.lower() in _SECRET:
        return f"{_variable(field)} {_problem(first)}"
    return f"{_variable(field)} {_problem(first)}, got {first['input']!r}"
