"""Typed access from a request to the services of the app that received it."""

from __future__ import annotations

from starlette.requests import Request

from ledger.bootstrap import Services


def services(request: Request) -> Services:
    """The running services (set by the app's lifespan)."""
    running: Services = request.app.state.services
    return running
