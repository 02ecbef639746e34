"""The console page: a live view of the ledger, served from the package."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    """This module's endpoints."""
    return []
