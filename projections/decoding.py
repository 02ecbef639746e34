"""Stored order events read straight into what the read models need, without event objects."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from eventsourcing.persistence import Notification

from ledger.store.mapper import LedgerMapper
from ledger.store.transcoder import tags_in
from projections.fold import PlacedOrder


def placed_decoder(mapper: Any) -> Callable[[Notification], PlacedOrder]:
    """A function from a stored Order.Placed event to its PlacedOrder."""

    def slow(notification: Notification) -> PlacedOrder:
        return PlacedOrder.from_event(mapper.to_domain_event(notification), notification.id)

    tag = mapper.datetime_tag if isinstance(mapper, LedgerMapper) else None
    if tag is None:
        return slow

    def fast(notification: Notification) -> PlacedOrder:
        # The event object is skipped: the state's fields are taken as they are. Only when
        # its two datetimes are its only tagged values; anything else goes the stock way.
        data = notification.state
        if tags_in(data) != 2:
            return slow(notification)
        state = orjson.loads(data)
        received = state["received_at"]
        if type(received) is not dict or received.get("_type_") != tag or "class_version" in state:
            return slow(notification)
        return PlacedOrder(
            notification.id,
            state["order_id"],
            state["strategy"],
            state["instrument"],
            state["position"],
            datetime.fromisoformat(received["_data_"]),  # as DatetimeAsISO decodes
            state["accepted_for"],
            state["rejected_for"],
            state["reason"],
            state.get("quantity", 1),  # stored before quantities: the defaults
            state.get("price"),
            state.get("multipliers") or {},
        )

    return fast
