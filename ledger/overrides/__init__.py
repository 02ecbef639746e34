"""Every use of a library's private parts, in one package, each checked by a test.

storage: eventsourcing, pgserver and pydantic-settings; uvicorn_http: uvicorn's HTTP protocol
(with sends.py, how it writes, and refusals.py, what it answers itself).
`missing()` lists what an upgrade has moved, so a test fails rather than a running service.
"""

from __future__ import annotations


def missing() -> list[str]:
    """What an upgrade has moved, in any library these overrides rely on."""
    from ledger.overrides import storage, uvicorn_http  # noqa: PLC0415 - heavy imports

    problems = storage.missing()
    for owner, name in uvicorn_http.RELIED_ON:
        target = getattr(owner, name, None)
        if target is None or not callable(target):
            problems.append(f"{owner.__name__}.{name} is gone")
    return problems
