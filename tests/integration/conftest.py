"""In-process clients of the HTTP API, on the test's own schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ledger.http.app import create_app
from ledger.settings import Settings
from tests.support import TOKEN


@pytest.fixture
def client(settings: Settings, profile_file: Path) -> Iterator[TestClient]:
    """The app with the worked example's profiles, running its services."""
    with TestClient(create_app(settings.replace(profiles=profile_file))) as test_client:
        yield test_client


@pytest.fixture
def locked(settings: Settings, profile_file: Path) -> Iterator[TestClient]:
    """The same app with LEDGER_API_TOKEN set to TOKEN."""
    app = create_app(settings.replace(profiles=profile_file, api_token=TOKEN))
    with TestClient(app) as test_client:
        yield test_client
