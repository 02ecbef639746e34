"""A load of random orders against a running ledger, retried safely with ORDER_IDs."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)

RETRY_STATUSES = {502, 503, 504}


@dataclass
class Summary:
    """What a producer run did."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    retried: int = 0
    failed: int = 0
    unsent: int = 0  # left when the ledger stopped answering
    errors: list[str] = field(default_factory=list)
    unreachable: bool = False  # an order went unanswered after every attempt

    def as_dict(self) -> dict[str, int]:
        """The counts, for printing."""
        return {
            "sent": self.sent,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "retried": self.retried,
            "failed": self.failed,
            "unsent": self.unsent,
        }


def random_orders(
    strategies: list[str], instruments: list[str], count: int, rng: random.Random
) -> list[dict[str, str]]:
    """Orders shaped like the original producer's, each with its own ORDER_ID."""
    run = uuid.uuid4().hex[:12]
    return [
        {
            "STRATEGY": rng.choice(strategies),
            "INSTRUMENT": rng.choice(instruments),
            "POSITION": rng.choice(("BUY", "SELL")),
            "ORDER_ID": f"{run}-{n}",
        }
        for n in range(count)
    ]


async def send(
    client: httpx.AsyncClient,
    url: str,
    order: dict[str, str],
    summary: Summary,
    attempts: int = 10,
    backoff: float = 0.2,
) -> dict[str, Any] | None:
    """Post one order, retrying with the same ORDER_ID until it is answered."""
    problem = ""
    for attempt in range(attempts):
        if attempt:
            summary.retried += 1
            await asyncio.sleep(min(backoff * 2 ** (attempt - 1), 5.0))
        try:
            response = await client.post(url, json=order)
        except httpx.TransportError as failure:
            problem = f"{type(failure).__name__}: {failure}"
            continue
        if response.status_code in RETRY_STATUSES:
            problem = f"HTTP {response.status_code}"
            continue
        if response.status_code != 200:
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
            break
        answer: dict[str, Any] = response.json()
        return answer
    else:
        summary.unreachable = True  # every attempt failed in transit or with 502-504
    summary.failed += 1
    summary.errors.append(f"{order['ORDER_ID']}: {problem}")
    log.error("order %s not answered: %s", order["ORDER_ID"], problem)
    return None


async def produce(
    base_url: str,
    orders: list[dict[str, str]],
    interval: float = 1.0,
    concurrency: int = 1,
    timeout: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
    backoff: float = 0.2,
) -> Summary:
    """Send the orders over `concurrency` connections, `interval` seconds apart per connection."""
    summary = Summary()
    url = base_url.rstrip("/") + "/create_order"
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    for order in orders:
        queue.put_nowait(order)

    async def worker(client: httpx.AsyncClient) -> None:
        # A ledger that answered no attempt of an order is down or unreachable: the run stops
        # there rather than spend every later order's retries (~26 s each) on it.
        while not queue.empty() and not summary.unreachable:
            order = queue.get_nowait()
            summary.sent += 1
            answer = await send(client, url, order, summary, backoff=backoff)
            if answer is not None:
                if answer.get("RESPONSE") == "ACCEPTED":
                    summary.accepted += 1
                else:
                    summary.rejected += 1
                log.info(
                    "%s %s %s %s -> %s for %s",
                    order["ORDER_ID"],
                    order["STRATEGY"],
                    order["INSTRUMENT"],
                    order["POSITION"],
                    answer.get("RESPONSE"),
                    answer.get("accepted_for"),
                )
            if interval > 0 and not queue.empty():
                await asyncio.sleep(interval)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport) as client:
        await asyncio.gather(*(worker(client) for _ in range(max(1, concurrency))))
    summary.unsent = queue.qsize()
    if summary.unsent:
        log.error("stopped: %s did not answer; %d orders not sent", base_url, summary.unsent)
    return summary
