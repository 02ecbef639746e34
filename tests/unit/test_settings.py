"""Settings: read from a mapping, checked by the model, never from os.environ unless asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.settings import Settings, SettingsError

EVERYTHING = {
    "LEDGER_HOST": "127.0.0.1",
    "LEDGER_PORT": "9000",
    "LEDGER_PROFILES": "profiles.json",
    "LEDGER_DATA_DIR": "/var/ledger",
    "DATABASE_URL": "postgresql://u@db:5432/ledger",
    "LEDGER_DB_SCHEMA": "books_2",
    "LEDGER_LOG_DIR": "/var/log/ledger",
    "LEDGER_LOG_LEVEL": "debug",
    "LEDGER_MAX_BATCH": "50",
    "LEDGER_DB_TIMEOUT": "5",
    "LEDGER_PROJECTIONS": "Thread",
    "LEDGER_API_TOKEN": "s3cret",
    "LEDGER_FAULTS": "after_commit=3",
    "LEDGER_BODY_TIMEOUT": "7",
    "LEDGER_ANSWER_TIMEOUT": "2.5",
}


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.host == "0.0.0.0"
    assert settings.port == 8080
    assert settings.profiles is None
    assert settings.data_dir == Path("data")
    assert settings.database_url is None
    assert settings.db_schema == ""
    assert settings.log_dir == Path("logs")
    assert settings.log_level == "INFO"
    assert settings.max_batch == 1000
    assert settings.db_timeout == 2
    assert settings.projections == "process"
    assert settings.api_token is None
    assert settings.faults == ""
    assert settings.body_timeout == 10
    assert settings.answer_timeout == 4.5


def test_every_variable_is_read() -> None:
    assert Settings.from_env(EVERYTHING) == Settings(
        host="127.0.0.1",
        port=9000,
        profiles=Path("profiles.json"),
        data_dir=Path("/var/ledger"),
        database_url="postgresql://u@db:5432/ledger",
        db_schema="books_2",
        log_dir=Path("/var/log/ledger"),
        log_level="DEBUG",
        max_batch=50,
        db_timeout=5,
        projections="thread",
        api_token="s3cret",
        faults="after_commit=3",
        body_timeout=7,
        answer_timeout=2.5,
    )


def test_empty_values_mean_unset() -> None:
    assert Settings.from_env(dict.fromkeys(EVERYTHING, "")) == Settings()
    assert Settings.from_env(dict.fromkeys(EVERYTHING, "  ")) == Settings()


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        ("LEDGER_API_TOKNE", "LEDGER_API_TOKNE is not a setting (did you mean LEDGER_API_TOKEN?)"),
        ("ledger_port", "ledger_port is not a setting (did you mean LEDGER_PORT?)"),
        ("LEDGER_port", "LEDGER_port is not a setting (did you mean LEDGER_PORT?)"),
        (
            "LEDGER_DATABASE_URL",
            "LEDGER_DATABASE_URL is not a setting (did you mean DATABASE_URL?)",
        ),
    ],
)
def test_unknown_variables_are_refused(variable: str, message: str) -> None:
    # A misspelt LEDGER_API_TOKEN must not start an open server.
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({variable: "x", "LEDGER_API_TOKEN": "s3cret"})
    assert str(raised.value) == message


def test_an_unknown_variable_far_from_any_lists_them() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"LEDGER_XYZZY": "1"})
    message = str(raised.value)
    assert message.startswith("LEDGER_XYZZY is not a setting; the settings are ")
    assert all(name in message for name in [*EVERYTHING, "LEDGER_WRITERS"])


def test_variables_without_the_prefix_are_not_ours() -> None:
    assert Settings.from_env({"LEDGERS": "x", "MY_LEDGER_PORT": "1", "PORT": "1"}) == Settings()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LEDGER_PORT", "x", "LEDGER_PORT (--port) must be an integer, got 'x'"),
        ("LEDGER_PORT", "0", "LEDGER_PORT (--port) must be at least 1, got '0'"),
        ("LEDGER_PORT", "65536", "LEDGER_PORT (--port) must be at most 65535, got '65536'"),
        ("LEDGER_MAX_BATCH", "many", "LEDGER_MAX_BATCH must be an integer, got 'many'"),
        ("LEDGER_MAX_BATCH", "0", "LEDGER_MAX_BATCH must be at least 1, got '0'"),
        ("LEDGER_DB_TIMEOUT", "1.5", "LEDGER_DB_TIMEOUT must be an integer, got '1.5'"),
        ("LEDGER_DB_TIMEOUT", "0", "LEDGER_DB_TIMEOUT must be at least 1, got '0'"),
        ("LEDGER_BODY_TIMEOUT", "x", "LEDGER_BODY_TIMEOUT must be an integer, got 'x'"),
        ("LEDGER_ANSWER_TIMEOUT", "soon", "LEDGER_ANSWER_TIMEOUT must be a number, got 'soon'"),
        (
            "LEDGER_PROJECTIONS",
            "fork",
            "LEDGER_PROJECTIONS must be 'process', 'thread' or 'off', got 'fork'",
        ),
        (
            "LEDGER_DB_SCHEMA",
            "a;drop",
            "LEDGER_DB_SCHEMA must be ASCII letters, digits and _, not starting with a digit,"
            " got 'a;drop'",
        ),
        (
            "LEDGER_DB_SCHEMA",
            "1abc",  # PostgreSQL would read it as a number
            "LEDGER_DB_SCHEMA must be ASCII letters, digits and _, not starting with a digit,"
            " got '1abc'",
        ),
        (
            "LEDGER_DB_SCHEMA",
            "s" * 64,  # PostgreSQL would cut it to 63: two settings, one store
            f"LEDGER_DB_SCHEMA must be at most 63 characters, got '{'s' * 64}'",
        ),
        (
            "LEDGER_LOG_LEVEL",
            "bogus",
            "LEDGER_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'bogus'",
        ),
        (
            "LEDGER_DB_TIMEOUT",
            "99999999999999999999",
            "LEDGER_DB_TIMEOUT must be at most 3600, got '99999999999999999999'",
        ),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({variable: value})
    assert str(raised.value) == message


def test_overrides_win_and_none_is_ignored() -> None:
    settings = Settings.from_env(
        EVERYTHING,
        host=None,
        port=9100,
        profiles=Path("other.json"),
        data_dir=None,
        database_url="postgresql://cli/ledger",
    )
    assert settings.host == "127.0.0.1"
    assert settings.port == 9100
    assert settings.profiles == Path("other.json")
    assert settings.data_dir == Path("/var/ledger")
    assert settings.database_url == "postgresql://cli/ledger"


def test_overrides_are_checked() -> None:
    with pytest.raises(SettingsError, match=r"^LEDGER_PORT \(--port\) must be at least 1"):
        Settings.from_env({}, port=0)


def test_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://env/ledger")
    monkeypatch.setenv("LEDGER_PORT", "9200")
    settings = Settings.from_env()
    assert settings.database_url == "postgresql://env/ledger"
    assert settings.port == 9200


def test_construction_ignores_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://env/ledger")
    monkeypatch.setenv("LEDGER_PORT", "9200")
    assert Settings().database_url is None
    assert Settings().port == 8080
    assert Settings(database_url="postgresql://given/x").database_url == "postgresql://given/x"


def test_construction_is_checked() -> None:
    with pytest.raises(SettingsError, match=r"^LEDGER_PROJECTIONS must be"):
        Settings(projections="fork")  # type: ignore[arg-type]


def test_replace_makes_a_checked_copy() -> None:
    settings = Settings(db_schema="s1")
    changed = settings.replace(profiles=Path("p.json"), api_token="t")
    assert (changed.profiles, changed.api_token, changed.db_schema) == (Path("p.json"), "t", "s1")
    assert settings.profiles is None  # the original is untouched
    with pytest.raises(SettingsError, match=r"^LEDGER_MAX_BATCH must be at least 1, got 0$"):
        settings.replace(max_batch=0)
    with pytest.raises(SettingsError, match="'nonsense' is not a setting"):
        settings.replace(nonsense=1)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1
