"""Building an aggregate from its created event directly (eventsourcing internals), for the domain.

Kept apart from the storage overrides so the domain imports nothing that does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
