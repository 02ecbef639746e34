"""What each endpoint declares about itself, for the OpenAPI document: written beside the route."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Doc:
    """One endpoint's description: its answer type, its input models and its errors."""

    summary: str
    answer: Any = None  # the type of the 200 body; None with media_type for a non-JSON body
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    path: type[BaseModel] | None = None  # the path parameters' rules (else: any string)
    description: str = ""
    errors: Mapping[int, str] = field(default_factory=dict)  # status -> why, as ErrorBody
    answers: Mapping[int, tuple[Any, str]] = field(default_factory=dict)  # other typed answers
    public: bool = False  # reachable without the bearer token
    media_type: str = "application/json"


def documented(doc: Doc) -> Callable[[F], F]:
    """Attach `doc` to an endpoint; the OpenAPI document is generated from the routes."""

    def mark(endpoint: F) -> F:
        endpoint.__openapi__ = doc  # type: ignore[attr-defined]
        return endpoint

    return mark


def doc_of(endpoint: Any) -> Doc | None:
    """The Doc attached to an endpoint, if any."""
    found = getattr(endpoint, "__openapi__", None)
    return found if isinstance(found, Doc) else None
