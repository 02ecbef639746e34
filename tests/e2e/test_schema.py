"""Generated requests from the OpenAPI document (schemathesis) against the real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from ledger.names import NFC_PROBLEM
from tests.support import Server, example_server

CASES_PER_OPERATION = 200  # six operations take parameters: well over 1,000 requests


@pytest.fixture(scope="module")
def running() -> Iterator[Server]:
    """One server, on its own embedded database, for every generated case."""
    with example_server("ledger-schema-") as server:
        yield server


def test_generated_requests_never_break_the_server_or_the_schema(running: Server) -> None:
    api = schemathesis.openapi.from_url(f"{running.url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 9
    calls = 0

    for operation in operations:
        if operation.path == "/stream":
            continue  # a stream never ends: tests/e2e/test_stream.py generates its own cases

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
            # min_sequence (or as_of) beyond the store is a 404 at once (the read never waits
            # for it); nothing here makes the projection lag 2 s, so any 5xx is a failure.
            if "beyond the store" in response.text:
                assert response.status_code == 404, response.text
                ((name, _),) = response.json()["fields"].items()
                wanted = int((case.query or {})[name])
                top = httpx.get(f"{running.url}/health", timeout=30).json()["sequence"]
                assert wanted > top, response.text
            excluded = [not_a_server_error]
            cursor = case.path == "/positions" and "after" in (case.query or {})
            if cursor and response.status_code == 422:
                # An opaque cursor: JSON Schema cannot say which strings are one (those the
                # server gave as `next`), so a generated one may be refused, by name.
                assert set(response.json()["fields"]) == {"after"}, response.text
                excluded.append(positive_data_acceptance)
            if response.status_code == 422 and NFC_PROBLEM in response.text:
                # Nor can it say "in Unicode NFC": a generated name may be refused for that,
                # and only for that.
                assert all(NFC_PROBLEM in v for v in response.json()["fields"].values())
                excluded.append(positive_data_acceptance)
            case.validate_response(response, excluded_checks=excluded)
            assert response.status_code < 500, response.text

        check()
    assert calls >= 1000
