"""Generated requests from the OpenAPI document (schemathesis) against the real server."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from schemathesis.checks import not_a_server_error

from tests.support import EXAMPLE_PROFILES, Server, free_port

CASES_PER_OPERATION = 200  # six operations take parameters: well over 1,000 requests


@pytest.fixture(scope="module")
def running() -> Iterator[Server]:
    """One server, on its own embedded database, for every generated case."""
    base = Path(tempfile.mkdtemp(prefix="ledger-schema-"))
    base.chmod(0o755)
    profile = base / "profiles.json"
    profile.write_text(json.dumps(EXAMPLE_PROFILES))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "DATABASE_URL"))}
    env["LEDGER_LOG_DIR"] = str(base / "logs")
    args = ["--port", str(free_port()), "--profiles", str(profile), "--data-dir", str(base)]
    server = Server([*args, "--host", "127.0.0.1"], env, base / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_generated_requests_never_break_the_server_or_the_schema(running: Server) -> None:
    api = schemathesis.openapi.from_url(f"{running.url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 9
    calls = 0

    for operation in operations:

        @given(case=operation.as_strategy())
        @hsettings(
            max_examples=CASES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: Any) -> None:
            nonlocal calls
            calls += 1
            response = case.call()
            # 503 is the documented answer to min_sequence beyond the store; any other 5xx,
            # or a 503 for anything else, is a failure.
            if response.status_code == 503:
                wanted = int((case.query or {}).get("min_sequence", -1))
                top = httpx.get(f"{running.url}/health", timeout=30).json()["sequence"]
                assert wanted > top, response.text
                assert response.json()["error"]
            case.validate_response(response, excluded_checks=[not_a_server_error])
            assert response.status_code < 500 or response.status_code == 503

        check()
    assert calls >= 1000
