"""`python -m shop.event_consumer`: stores every conversation event published to RabbitMQ (shop/event_broker.py) in a
`conversation_events` table that analytics can query, on SQLite or PostgreSQL.

At-least-once, stored once: a message is acknowledged only after its row is committed, and a message delivered twice
(same `message_id`) is stored once. A message that is not a JSON event is logged and set aside (rejected without
requeue), never silently skipped. A lost broker or database connection is logged and retried.

Settings: EVENT_BROKER_URL (amqp://user:password@host:5672/), EVENT_BROKER_QUEUE (rasa_events),
EVENTS_DATABASE_URL (default: sqlite var/events.db), or the options below.
`--idle-exit N` stops after N seconds without a message (for tests and benchmarks).

Events are masked again before they are stored (shop/pii.py), so a publisher that does not mask (Rasa's own pika
broker, an older replica) still leaves no email, phone number or street address in the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from typing import Any, Dict, List, Optional

import aio_pika
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, create_engine, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from shop.event_broker import DEFAULT_QUEUE, without_password
from shop.pii import mask_event
from shop.settings import PROJECT_ROOT

logger = logging.getLogger("shop.event_consumer")

metadata = MetaData()
conversation_events = Table(
    "conversation_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False, unique=True),
    Column("sender_id", String(255), nullable=False, index=True),
    Column("type_name", String(255), nullable=False),
    Column("timestamp", Float),
    Column("data", Text, nullable=False),
    Column("received_at", Float, nullable=False),
)


def default_database_url() -> str:
    return os.environ.get("EVENTS_DATABASE_URL") or f"sqlite:///{PROJECT_ROOT / 'var' / 'events.db'}"


def events_engine(url: str) -> Engine:
    engine = create_engine(url, future=True, pool_pre_ping=True)
    metadata.create_all(engine)
    return engine


def row_for(message_id: str, body: bytes) -> Dict[str, Any]:
    """The table row of one broker message; ValueError when it is not a Rasa event."""
    event = json.loads(body)
    if not isinstance(event, dict) or not isinstance(event.get("event"), str) or not event.get("sender_id"):
        raise ValueError("not a Rasa event (needs 'event' and 'sender_id')")
    event = mask_event(event)
    return {"message_id": message_id, "sender_id": str(event["sender_id"])[:255], "type_name": event["event"],
            "timestamp": event.get("timestamp"), "data": json.dumps(event), "received_at": time.time()}


def store(engine: Engine, rows: List[Dict[str, Any]]) -> None:
    """Insert rows, skipping message ids already stored (a redelivery)."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(conversation_events).on_conflict_do_nothing(index_elements=["message_id"])
    with engine.begin() as connection:
        connection.execute(statement, rows)


def stored_count(engine: Engine, sender_id: Optional[str] = None) -> int:
    query = select(func.count()).select_from(conversation_events)
    if sender_id is not None:
        query = query.where(conversation_events.c.sender_id == sender_id)
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


async def consume(broker_url: str, engine: Engine, queue_name: str = DEFAULT_QUEUE, batch_size: int = 200,
                  idle_exit: Optional[float] = None) -> int:
    """Store messages until cancelled (or idle for `idle_exit` seconds); returns how many were stored."""
    stored = 0
    while True:
        try:
            connection = await aio_pika.connect(broker_url, timeout=5)
            async with connection:
                channel = await connection.channel()
                await channel.set_qos(prefetch_count=batch_size)
                queue = await channel.declare_queue(queue_name, durable=True)
                logger.info(f"Consuming queue '{queue_name}' at {without_password(broker_url)}.")
                stored += await _consume_batches(queue, engine, batch_size, idle_exit)
                return stored
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - aiormq's closed-channel errors are not all AMQPError
            # unacknowledged messages go back to the queue when the channel closes: nothing is lost
            logger.error(f"Broker or database unreachable ({exc!r}); retrying in 2 s.")
            await asyncio.sleep(2)


async def _consume_batches(queue: aio_pika.abc.AbstractQueue, engine: Engine, batch_size: int,
                           idle_exit: Optional[float]) -> int:
    stored = 0
    idle_since = time.monotonic()
    while True:
        batch: List[aio_pika.abc.AbstractIncomingMessage] = []
        while len(batch) < batch_size:
            message = await queue.get(no_ack=False, fail=False, timeout=5)
            if message is None:
                break
            batch.append(message)
        if not batch:
            if idle_exit is not None and time.monotonic() - idle_since >= idle_exit:
                return stored
            await asyncio.sleep(0.2)
            continue
        idle_since = time.monotonic()
        rows = []
        for message in batch:
            try:
                rows.append(row_for(message.message_id or f"missing-id-{message.delivery_tag}", message.body))
            except ValueError as exc:
                logger.error(f"Set aside a message that is not a Rasa event ({exc}): {message.body[:200]!r}")
                await message.reject(requeue=False)
        if rows:
            store(engine, rows)  # a database error propagates: unacknowledged messages are delivered again
        for message in batch:
            if not message.processed:
                await message.ack()
        stored += len(rows)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shop.event_consumer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker-url", default=os.environ.get("EVENT_BROKER_URL", ""))
    parser.add_argument("--database-url", default=default_database_url())
    parser.add_argument("--queue", default=os.environ.get("EVENT_BROKER_QUEUE") or DEFAULT_QUEUE)
    parser.add_argument("--idle-exit", type=float, default=None, help="stop after this many idle seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.broker_url:
        parser.error("no broker: set EVENT_BROKER_URL or pass --broker-url amqp://user:password@host:5672/")
    engine = events_engine(args.database_url)
    try:
        stored = asyncio.run(consume(args.broker_url, engine, args.queue, idle_exit=args.idle_exit))
    except KeyboardInterrupt:
        return 0
    logger.info(f"Stopped after {stored} event(s); {stored_count(engine)} in the table.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
