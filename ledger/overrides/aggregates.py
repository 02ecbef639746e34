"""Aggregates built and replayed from their events directly (eventsourcing internals).

Kept apart from the storage overrides so the domain imports nothing that does I/O.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from eventsourcing.domain import (
    CanMutateAggregate,
    DecoratedFuncCaller,
    OriginatorVersionError,
    decorated_funcs,
)

# eventsourcing: a new aggregate from its "created" event, as CanInitAggregate.mutate builds it
# but without its per-call signature filtering (the caller passes exactly the __init__ fields).


def new_aggregate(cls: type[Any], created: Any, fields: Mapping[str, Any]) -> Any:
    """The aggregate `created` starts, with the event pending, as Aggregate(...) returns it."""
    aggregate = object.__new__(cls)
    aggregate.__base_init__(
        originator_id=created.originator_id,
        originator_version=created.originator_version,
        timestamp=created.timestamp,
    )
    cls.__init__(aggregate, **fields)  # the body of the @event-decorated __init__
    created.apply(aggregate)
    aggregate.pending_events.append(created)
    return aggregate


# eventsourcing: what mutate() and DecoratedFuncCaller.apply do for one stored event of an
# @event method, without the event object. Loading a strategy's 10,000 books after a restart
# replays 150,000-500,000 such events; the stock path (an event object, a signature filter
# per event, a bound method) was most of the load (cProfile). With this, and binary rows in
# store/bulk.py: 2.0-2.3 s -> 1.1-1.4 s for books of 15 events, 6.7-7.9 -> 4.0-4.4 s for
# books ~50 events past their snapshots.

Replay = Callable[[Any, int, dict[str, Any]], None]

_new = object.__new__
_set = object.__setattr__


def new_event(cls: type[Any], state: dict[str, Any]) -> Any:
    """cls(**state) for one of eventsourcing's frozen dataclass events, `state` holding every
    field in the class's order: without the dataclass __init__, which sets each field through
    object.__setattr__ (1.0 µs an event against 0.16), nor DomainEvent's check that the
    originator_id is a UUID (an aggregate's own id always is)."""
    built = _new(cls)
    _set(built, "__dict__", state)
    return built


@functools.cache  # per class: its signature and hierarchy do not change
def direct_replay(cls: type[Any]) -> Replay | None:
    """A replay equal to mutating with an event of `cls`; None where only the stock one is."""
    # None: an apply or mutate of its own, upcasting, a method taking the id or version.
    func = decorated_funcs.get(cls)
    if (
        func is None
        or cls.mutate is not CanMutateAggregate.mutate
        or [k for k in cls.__mro__ if "apply" in vars(k)]
        != [DecoratedFuncCaller, CanMutateAggregate]
        or getattr(cls, "class_version", 1) != 1
    ):
        return None
    names = tuple(name for name in inspect.signature(func).parameters if name != "self")
    if {"originator_id", "originator_version"} & set(names):
        return None

    def replay(aggregate: Any, version: int, state: dict[str, Any]) -> None:
        expected = aggregate.version + 1
        if version != expected:
            raise OriginatorVersionError(version, expected)
        func(aggregate, **{name: state[name] for name in names if name in state})
        aggregate.version = version
        aggregate.modified_on = state["timestamp"]

    return replay
