"""The event broker and its consumer against the machine's RabbitMQ: every event stored once and in order, a broker
outage never blocks publishing and is logged, what waited is delivered when the broker is back."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import uuid
from typing import Iterator, List, Optional

import aio_pika
import pytest
from rasa.utils.endpoints import EndpointConfig
from sqlalchemy import select

from shop.event_broker import ResilientEventBroker
from shop.event_consumer import consume, conversation_events, events_engine, stored_count
from shop.pii import pseudonym


@pytest.fixture
def queue(rabbitmq_url) -> Iterator[str]:
    name = f"test_events_{uuid.uuid4().hex[:10]}"
    yield name

    async def delete() -> None:
        async with await aio_pika.connect(rabbitmq_url) as connection:
            channel = await connection.channel()
            await channel.queue_delete(name)

    asyncio.run(delete())


def event(sender: str, number: int) -> dict:
    return {"event": "user", "sender_id": sender, "timestamp": 1700000000.0 + number, "text": f"message {number}"}


async def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_every_published_event_is_stored_once_in_order(rabbitmq_url, queue, tmp_path):
    engine = events_engine(f"sqlite:///{tmp_path / 'events.db'}")

    async def scenario() -> None:
        broker = ResilientEventBroker(rabbitmq_url, queue=queue)
        broker.start()
        for number in range(60):
            broker.publish(event("alice", number))
        await wait_until(lambda: broker.published == 60)
        await broker.close()
        assert await consume(rabbitmq_url, engine, queue, idle_exit=0.5) == 60
        assert await consume(rabbitmq_url, engine, queue, idle_exit=0.5) == 0  # nothing delivered twice

    asyncio.run(scenario())
    with engine.connect() as connection:
        rows = connection.execute(select(conversation_events.c.data).order_by(conversation_events.c.id)).all()
    assert [json.loads(row.data)["text"] for row in rows] == [f"message {n}" for n in range(60)]


def personal_event(sender: str) -> dict:
    """A user event as Rasa publishes it, with personal data in its text, entities, slots and metadata."""
    return {"event": "user", "sender_id": sender, "timestamp": 1700000000.0,
            "text": "I'm alice@example.com, call +49 151 12345678, I live at 12 Main Street",
            "parse_data": {"intent": {"name": "inform", "confidence": 0.9},
                           "entities": [{"entity": "email", "value": "alice@example.com"},
                                        {"entity": "order_id", "value": "10002"}]},
            "metadata": {"client_address": "203.0.113.9", "profile": {"address": ["Hauptstraße 5", "Berlin"]}}}


def test_events_leave_the_bot_and_are_stored_masked(rabbitmq_url, queue, tmp_path):
    """What the broker carries and what the consumer stores holds no email, phone number or street address in clear;
    the consumer also masks what an unmasking publisher sent (here: published straight to the queue)."""
    engine = events_engine(f"sqlite:///{tmp_path / 'events.db'}")
    raw_sender = "erin@example.com"  # a REST `sender` that is an email address

    async def scenario() -> bytes:
        broker = ResilientEventBroker(rabbitmq_url, queue=queue)
        broker.start()
        broker.publish(personal_event("masked-sender"))
        await wait_until(lambda: broker.published == 1)
        await broker.close()
        async with await aio_pika.connect(rabbitmq_url) as connection:
            channel = await connection.channel()
            on_the_wire = await (await channel.declare_queue(queue, durable=True)).get(no_ack=False)
            body = on_the_wire.body
            await on_the_wire.nack(requeue=True)
            await channel.default_exchange.publish(
                aio_pika.Message(json.dumps(personal_event(raw_sender)).encode(), message_id=uuid.uuid4().hex),
                routing_key=queue)
        await consume(rabbitmq_url, engine, queue, idle_exit=0.5)
        return body

    body = asyncio.run(scenario()).decode()
    with engine.connect() as connection:
        rows = connection.execute(select(conversation_events.c.sender_id, conversation_events.c.data)).all()
    assert len(rows) == 2
    for text in [body] + [row.data for row in rows] + [row.sender_id for row in rows]:
        for secret in ("alice@", "erin@", "151 1234", "Main Street", "Hauptstra"):
            assert secret not in text, text
    stored = [json.loads(row.data) for row in rows]
    for event_data in stored:
        assert event_data["text"] == "I'm [email], call [phone], I live at [address]"
        assert [entity["value"] for entity in event_data["parse_data"]["entities"]] == ["[email]", "10002"]
        assert event_data["metadata"] == {"client_address": "203.0.113.9", "profile": {"address": ["[address]",
                                                                                                   "Berlin"]}}
    assert {row.sender_id for row in rows} == {"masked-sender", pseudonym(raw_sender)}


def test_a_message_delivered_twice_is_stored_once(rabbitmq_url, queue, tmp_path):
    engine = events_engine(f"sqlite:///{tmp_path / 'events.db'}")

    async def scenario() -> None:
        async with await aio_pika.connect(rabbitmq_url) as connection:
            channel = await connection.channel()
            await channel.declare_queue(queue, durable=True)
            for _ in range(2):
                await channel.default_exchange.publish(
                    aio_pika.Message(json.dumps(event("bob", 1)).encode(), message_id="same-id"), routing_key=queue)
        await consume(rabbitmq_url, engine, queue, idle_exit=0.5)

    asyncio.run(scenario())
    assert stored_count(engine, "bob") == 1


def test_a_message_that_is_not_an_event_is_logged_and_set_aside(rabbitmq_url, queue, tmp_path, caplog):
    engine = events_engine(f"sqlite:///{tmp_path / 'events.db'}")

    async def scenario() -> Optional[aio_pika.abc.AbstractIncomingMessage]:
        async with await aio_pika.connect(rabbitmq_url) as connection:
            channel = await connection.channel()
            await channel.declare_queue(queue, durable=True)
            for body in (b"not json", json.dumps(event("carol", 1)).encode()):
                await channel.default_exchange.publish(aio_pika.Message(body, message_id=uuid.uuid4().hex),
                                                       routing_key=queue)
        await consume(rabbitmq_url, engine, queue, idle_exit=0.5)
        async with await aio_pika.connect(rabbitmq_url) as connection:
            channel = await connection.channel()
            return await (await channel.declare_queue(queue, durable=True)).get(fail=False)

    with caplog.at_level(logging.ERROR, logger="shop.event_consumer"):
        left = asyncio.run(scenario())
    assert stored_count(engine, "carol") == 1
    assert left is None  # not redelivered for ever
    assert "Set aside a message that is not a Rasa event" in caplog.text


class Relay:
    """A TCP relay to RabbitMQ on a port of its own: stopping it is a broker outage that touches nobody else."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server: Optional[asyncio.base_events.Server] = None
        self.links: List[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self.server.close()
        for writer in self.links:
            writer.close()
        await self.server.wait_closed()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.links += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


def test_publishing_goes_on_while_the_broker_is_down_and_what_waited_arrives(rabbitmq_url, queue, tmp_path,
                                                                             caplog):
    relay = Relay(5672)
    engine = events_engine(f"sqlite:///{tmp_path / 'events.db'}")

    async def scenario() -> None:
        broker = ResilientEventBroker(f"amqp://guest:guest@127.0.0.1:{relay.port}/", queue=queue, retry_seconds=0.2)
        broker.start()  # the broker is down: starting must not wait for it
        for number in range(10):
            broker.publish(event("dave", number))  # returns at once
        await asyncio.sleep(1.0)
        assert broker.published == 0 and len(broker.waiting) == 10
        await relay.start()
        await wait_until(lambda: broker.published == 10)
        await relay.stop()  # down again, mid-conversation
        for number in range(10, 20):
            broker.publish(event("dave", number))
        await asyncio.sleep(1.0)
        await relay.start()
        await wait_until(lambda: broker.published == 20)
        await broker.close()
        await relay.stop()
        await consume(rabbitmq_url, engine, queue, idle_exit=0.5)

    with caplog.at_level(logging.INFO, logger="shop.event_broker"):
        asyncio.run(scenario())
    assert stored_count(engine, "dave") == 20
    assert caplog.text.count("unreachable") == 2  # once per outage, not once per retry
    assert caplog.text.count("reachable again") == 2


def test_an_empty_broker_url_means_no_broker():
    async def create() -> Optional[ResilientEventBroker]:
        return await ResilientEventBroker.from_endpoint_config(EndpointConfig(url="", type="x", queue="q"))

    assert asyncio.run(create()) is None
