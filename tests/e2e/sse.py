"""A stream client for the tests: collects the events of GET /stream in a thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import connect_sse

Event = tuple[str, int, dict[str, Any]]  # (type, id, data)


@dataclass
class Listener:
    """A stream client in a thread, collecting what it receives."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    status: int | None = None
    comments: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)
    connected: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Listener:
        threading.Thread(target=self._run, daemon=True).start()
        assert self.connected.wait(30), "the stream did not open"
        return self

    def _run(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(30, read=60)) as client,
                connect_sse(client, "GET", self.url, headers=self.headers) as source,
            ):
                self.status = source.response.status_code
                self.connected.set()
                if self.status != 200:
                    return
                for sse in source.iter_sse():
                    if not sse.data:
                        continue  # the retry hint
                    with self.changed:
                        self.events.append((sse.event, int(sse.id), json.loads(sse.data)))
                        self.changed.notify_all()
        except httpx.HTTPError:
            pass
        finally:
            self.connected.set()
            self.done.set()

    def wait_for(self, test: Callable[[list[Event]], bool], timeout: float = 15) -> list[Event]:
        """The events received, once `test` holds for them (fails after `timeout`)."""
        with self.changed:
            assert self.changed.wait_for(lambda: test(self.events), timeout), self.events[-5:]
            return list(self.events)


def orders_of(events: list[Event]) -> list[str]:
    """The ORDER_IDs of the order events, in stream order."""
    return [data["order_id"] for kind, _, data in events if kind == "order"]
