"""The naive way: eventsourcing's load-decide-save for every request, as its docs lead to."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
import uvicorn
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledger.answers import OrderAnswer
from ledger.domain import Book, Order, Position, Roster, decide
from ledger.settings import Settings
from ledger.store.database import Database
from ledger.store.factory import STOCK


class NaiveLedger(Application[UUID]):
    """Loads every book from the store for each order, decides, saves; retries conflicts."""

    name = "Ledger"

    def place(self, strategy: str, instrument: str, position: Position, order_id: str) -> Any:
        """One order, the textbook way."""
        for _ in range(20):
            roster: Any = self.repository.get(Roster.create_id())
            books: list[Book] = []
            for user, book_strategy in roster.books:
                if book_strategy == strategy:
                    loaded: Any = self.repository.get(Book.create_id(user, strategy))
                    books.append(loaded)
            now = datetime.now(UTC)
            booked, rejected, reason = decide(books, order_id, instrument, position, now)
            accepted = [b.user for b in booked]
            order = Order(
                order_id=order_id,
                strategy=strategy,
                instrument=instrument,
                position=position.value,
                received_at=now,
                accepted_for=accepted,
                rejected_for=rejected,
                reason=reason,
            )
            try:
                recordings = self.save(order, *books)
            except IntegrityError:
                try:
                    existing: Any = self.repository.get(Order.create_id(order_id))
                except AggregateNotFoundError:
                    continue  # a book changed under us: load again and decide again
                return OrderAnswer.of(existing, None)
            return OrderAnswer.of(order, recordings[0].notification.id)
        msg = "too many conflicts"
        raise RuntimeError(msg)


def create_app(app: NaiveLedger) -> Starlette:
    """A sync endpoint: Starlette runs it in its thread pool, one request per thread."""

    async def endpoint(request: Request) -> Response:
        body = orjson.loads(await request.body())
        answer = await run_in_threadpool(
            app.place,
            body["STRATEGY"],
            body["INSTRUMENT"],
            Position(body["POSITION"]),
            body["ORDER_ID"],
        )
        return Response(orjson.dumps(answer), media_type="application/json")

    async def health(request: Request) -> Response:
        return Response(b"{}", media_type="application/json")

    return Starlette(routes=[Route("/order", endpoint, methods=["POST"]), Route("/health", health)])


if __name__ == "__main__":
    port, url, schema = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    database = Database.open(Settings(database_url=url, db_schema=schema))
    env = database.eventsourcing_env()
    env["PERSISTENCE_MODULE"] = STOCK  # eventsourcing's own recorders, as the docs have it
    env["POSTGRES_POOL_SIZE"] = "20"
    uvicorn.run(create_app(NaiveLedger(env=env)), host="127.0.0.1", port=port, log_level="warning")
