"""The lock store replicas share (shop/lock_store.py), against the machine's Redis: tickets taken at the same moment
by two replicas are all different, and one conversation is handled by one replica at a time."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import List

import pytest
import redis
from rasa.utils.endpoints import EndpointConfig

from shop.lock_store import AtomicRedisLockStore
from tests.conftest import REDIS_URL, _port_open, require_service


@pytest.fixture
def replicas() -> List[AtomicRedisLockStore]:
    require_service("Redis", _port_open(REDIS_URL, 6379), REDIS_URL)
    config = EndpointConfig(url="127.0.0.1", port="6379", password="", db=1)  # as endpoints.yml gives them
    return [AtomicRedisLockStore(endpoint_config=config) for _ in range(2)]


def test_tickets_taken_at_the_same_moment_are_all_different(replicas):
    conversation = f"tickets-{uuid.uuid4().hex}"
    tickets: List[int] = []
    start = threading.Barrier(16)

    def take(store: AtomicRedisLockStore) -> None:
        start.wait()
        for _ in range(10):
            tickets.append(store.issue_ticket(conversation))

    threads = [threading.Thread(target=take, args=(replicas[n % 2],)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(tickets) == list(range(160))  # 160 tickets, no number given twice
    replicas[0].red.delete(replicas[0].key_prefix + conversation)


def test_one_conversation_is_handled_by_one_replica_at_a_time_and_the_lock_is_gone_after(replicas):
    conversation = f"turns-{uuid.uuid4().hex}"
    inside = 0
    most_inside = 0
    handled = 0

    async def turn(store: AtomicRedisLockStore) -> None:
        nonlocal inside, most_inside, handled
        async with store.lock(conversation, wait_time_in_seconds=0.01):
            inside += 1
            most_inside = max(most_inside, inside)
            await asyncio.sleep(0.02)
            inside -= 1
            handled += 1

    async def customers() -> None:
        await asyncio.gather(*(turn(replicas[n % 2]) for n in range(12)))

    asyncio.run(customers())
    assert handled == 12 and most_inside == 1
    assert replicas[0].get_lock(conversation) is None  # nothing left behind in Redis


def test_redis_down_is_a_lock_error_not_a_hang():
    store = AtomicRedisLockStore(host="127.0.0.1", port=1, socket_timeout=1)
    from rasa.core.lock_store import LockError

    with pytest.raises(LockError):
        store.issue_ticket("anyone")
    assert isinstance(store.red, redis.Redis)
