"""Rasa's event broker for this project: every event of every conversation goes to a RabbitMQ queue, in order,
without a broker outage ever holding a customer up.

Why not Rasa's own pika broker: it refuses to start while RabbitMQ is unreachable (~100 s of retries, then exit 1),
so a broker outage during a deploy would take the bot down. This one starts at once, keeps events in memory while
the broker is away (bounded: `max_waiting`, the oldest dropped first, each drop counted in the log), logs the outage
once and the recovery once, and delivers what waited when the broker is back. Each message carries a `message_id`,
so a message sent again after a lost confirmation is stored once by the consumer (shop/event_consumer.py).
Every event is masked before it waits or leaves (shop/pii.py): emails, phone numbers and street addresses in any text
field (user and bot text, entities, slot values, metadata) become `[email]`, `[phone]`, `[address]`, so neither
RabbitMQ nor whatever reads the queue holds them in clear.

endpoints.yml: `type: shop.event_broker.ResilientEventBroker`, `url: ${EVENT_BROKER_URL}` (amqp://user:pw@host:5672/;
empty: no broker), `queue: ${EVENT_BROKER_QUEUE}` (rasa_events), optional `max_waiting` (50000) and `retry_seconds` (2).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from typing import Any, Deque, Dict, Optional, Tuple
from urllib.parse import urlsplit

import aio_pika
from rasa.core.brokers.broker import EventBroker
from rasa.utils.endpoints import EndpointConfig

from shop.pii import mask_event

logger = logging.getLogger(__name__)

DEFAULT_QUEUE = "rasa_events"


def without_password(url: str) -> str:
    """The broker's address as it may appear in a log."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


class ResilientEventBroker(EventBroker):
    def __init__(self, url: str, queue: str = DEFAULT_QUEUE, max_waiting: int = 50000,
                 retry_seconds: float = 2.0) -> None:
        self.url, self.queue, self.max_waiting, self.retry_seconds = url, queue, max_waiting, retry_seconds
        self.waiting: Deque[Tuple[str, Dict[str, Any]]] = deque()
        self.published = 0
        self.dropped = 0
        self._event_arrived = asyncio.Event()
        self._task: Optional[asyncio.Task] = None
        self._down = False

    @classmethod
    async def from_endpoint_config(cls, broker_config: EndpointConfig,
                                   event_loop: Optional[asyncio.AbstractEventLoop] = None,
                                   ) -> Optional[ResilientEventBroker]:
        url = (broker_config.url or "").strip()
        if not url:
            logger.info("No event broker: EVENT_BROKER_URL is empty.")
            return None
        options = broker_config.kwargs
        broker = cls(url, queue=str(options.get("queue") or DEFAULT_QUEUE),
                     max_waiting=int(options.get("max_waiting") or 50000),
                     retry_seconds=float(options.get("retry_seconds") or 2.0))
        broker.start()
        return broker

    def start(self) -> None:
        """Connect and deliver in the background: the server starts whether or not the broker is there."""
        self._task = asyncio.get_running_loop().create_task(self._deliver_forever())

    def publish(self, event: Dict[str, Any]) -> None:
        if len(self.waiting) >= self.max_waiting:
            self.waiting.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.error(f"Event broker: {self.dropped} event(s) dropped so far: {self.max_waiting} were "
                             f"already waiting for {without_password(self.url)}. They are still in the tracker store.")
        self.waiting.append((uuid.uuid4().hex, mask_event(event)))
        self._event_arrived.set()

    def is_ready(self) -> bool:
        return True  # customers are answered whether or not the broker is reachable

    async def _deliver_forever(self) -> None:
        while True:
            try:
                connection = await aio_pika.connect(self.url, timeout=5)
                async with connection:
                    channel = await connection.channel(publisher_confirms=True)
                    await channel.declare_queue(self.queue, durable=True)
                    if self._down:
                        logger.warning(f"Event broker {without_password(self.url)} reachable again; sending the "
                                       f"{len(self.waiting)} event(s) that waited.")
                    else:
                        logger.info(f"Event broker: publishing every event to queue '{self.queue}' at "
                                    f"{without_password(self.url)}.")
                    self._down = False
                    await self._deliver(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any connection failure: wait, log once, try again
                if not self._down:
                    logger.error(f"Event broker {without_password(self.url)} unreachable ({exc!r}); customers are "
                                 f"still answered, events wait in memory (up to {self.max_waiting}) until it is back.")
                    self._down = True
                await asyncio.sleep(self.retry_seconds)

    async def _deliver(self, channel: aio_pika.abc.AbstractChannel) -> None:
        while True:
            while not self.waiting:
                self._event_arrived.clear()
                await self._event_arrived.wait()
            message_id, event = self.waiting[0]
            await channel.default_exchange.publish(
                aio_pika.Message(json.dumps(event).encode(), message_id=message_id, content_type="application/json",
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=self.queue,
            )
            if self.waiting and self.waiting[0][0] == message_id:  # not dropped meanwhile
                self.waiting.popleft()
            self.published += 1

    async def close(self, flush_seconds: float = 5.0) -> None:
        """On shutdown: give waiting events a few seconds to go out, then say how many did not."""
        deadline = asyncio.get_running_loop().time() + flush_seconds
        while self.waiting and not self._down and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        if self._task is not None:
            self._task.cancel()
        if self.waiting:
            logger.error(f"Event broker: {len(self.waiting)} event(s) not delivered at shutdown; they are in the "
                         f"tracker store.")
