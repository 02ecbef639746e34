"""Users and strategies at run time: read, take up, change and drop."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    """This module's endpoints."""
    return []
