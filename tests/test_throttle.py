"""The verification throttle (shop/throttle.py) and the counters under it (shop/limits.py), on each store: the shop
database (the embedded default, SQLite and PostgreSQL), Redis (replicas) and memory; and the throttle in the real
form validation: past a limit even the right pair is not verified, and the customer is offered a person."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Iterator

import pytest
import redis
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.order_status import ActionOrderStatus, ValidateOrderStatusForm
from shop.limits import DatabaseLog, FallbackLog, MemoryLog, RedisLog, hashed_key, limit_events, redis_options
from shop.settings import ThrottlePolicy, load_settings
from shop.throttle import CLIENT_ADDRESS, Attempt, VerificationThrottle
from tests.conftest import REDIS_URL, _port_open, require_service
from tests.support import make_tracker, slot_events, texts

WINDOW_S = 15 * 60
POLICY = ThrottlePolicy(window_minutes=15, max_failures_per_order=4, per_sender=3, per_client=5)


class Clock:
    """Time the tests move by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis_log() -> Iterator[RedisLog]:
    """A RedisLog under a prefix of its own on the machine's Redis, deleted afterwards."""
    require_service("Redis", _port_open(REDIS_URL, 6379), REDIS_URL)
    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"test:limits:{uuid.uuid4().hex[:10]}:"
    yield RedisLog(client, prefix)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture(params=["database", "redis", "memory"])
def log(request, db):
    """Each store the counters can live in (database: the test shop database, SQLite and PostgreSQL)."""
    if request.param == "database":
        return DatabaseLog(lambda: db)
    if request.param == "redis":
        return request.getfixturevalue("redis_log")
    return MemoryLog()


def test_counts_slide_with_the_window(log):
    clock = Clock()
    log.add(["a"], WINDOW_S, clock.now)
    log.add(["a", "b"], WINDOW_S, clock.now + 60)
    assert log.counts(["a", "b", "c"], WINDOW_S, clock.now + 120) == {"a": 2, "b": 1, "c": 0}
    assert log.counts(["a", "b"], WINDOW_S, clock.now + WINDOW_S + 30) == {"a": 1, "b": 1}
    assert log.counts(["a", "b"], WINDOW_S, clock.now + WINDOW_S + 61) == {"a": 0, "b": 0}


def test_take_allows_the_limit_then_says_how_long_to_wait(log):
    now = 1_700_000_000.0
    assert [log.take("rate:x", 3, 60, now + step) for step in range(3)] == [0, 0, 0]
    assert log.take("rate:x", 3, 60, now + 10) == pytest.approx(50)  # the first leaves the window at now + 60
    assert log.take("rate:x", 3, 60, now + 59) == pytest.approx(1)  # refused attempts were not counted
    assert log.take("rate:x", 3, 60, now + 60.5) == 0
    assert log.take("rate:y", 3, 60, now + 10) == 0  # another key has its own count


def test_redis_take_is_atomic_across_replicas(redis_log):
    """Twenty requests at once from two 'replicas' (two clients): exactly the limit gets through."""
    other = RedisLog(redis.Redis.from_url(REDIS_URL), redis_log.prefix)
    allowed = []
    barrier = threading.Barrier(20)

    def request(number: int) -> None:
        barrier.wait()
        store = redis_log if number % 2 else other
        allowed.append(store.take("rate:burst", 10, 60, 1_700_000_000.0 + number / 1000) == 0)

    threads = [threading.Thread(target=request, args=(number,)) for number in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 10


def test_a_redis_outage_falls_back_to_the_local_store_and_is_logged_once(caplog):
    down = RedisLog(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2))
    clock = Clock(0)
    log = FallbackLog(down, MemoryLog(), "Test limits", retry_s=30, clock=clock)
    with caplog.at_level(logging.ERROR, logger="shop.limits"):
        assert [log.take("k", 2, 60, 1000 + n) for n in range(3)] == [0, 0, pytest.approx(58)]
        log.add(["k2"], 60, 1000)
        assert log.counts(["k2"], 60, 1001) == {"k2": 1}
    assert caplog.text.count("Redis unreachable") == 1


def test_redis_is_used_when_the_lock_store_uses_it(monkeypatch):
    monkeypatch.setenv("LOCK_STORE_TYPE", "in_memory")
    monkeypatch.setenv("REDIS_HOST", "localhost")
    assert redis_options("auto") is None  # the embedded default: no Redis needed
    assert redis_options("redis")["host"] == "localhost"
    monkeypatch.setenv("LOCK_STORE_TYPE", "shop.lock_store.AtomicRedisLockStore")
    monkeypatch.setenv("REDIS_HOST", "redis.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_PASSWORD", "")
    assert redis_options("auto") == {"host": "redis.internal", "port": 6380, "password": None, "db": 1}
    assert redis_options("database") is None and redis_options("memory") is None


def throttle(log, clock: Clock, policy: ThrottlePolicy = POLICY) -> VerificationThrottle:
    return VerificationThrottle(policy, log, exempt_clients=("127.0.0.0/8", "::1"), clock=clock)


def test_each_limit_throttles_on_its_own(log):
    clock = Clock()
    guard = throttle(log, clock)
    # one order number tried from many conversations and addresses
    for number in range(4):
        assert guard.blocked_by(Attempt("10002", f"s{number}", f"198.51.100.{number}")) is None
        guard.record_failure(Attempt("10002", f"s{number}", f"198.51.100.{number}"))
    assert guard.blocked_by(Attempt("10002", "fresh", "198.51.100.200")) == "order"
    assert guard.blocked_by(Attempt("10003", "fresh", "198.51.100.200")) is None
    # one conversation trying many orders
    for number in range(3):
        guard.record_failure(Attempt(f"2000{number}", "script", f"203.0.113.{number}"))
    assert guard.blocked_by(Attempt("30000", "script", "203.0.113.99")) == "sender"
    # one address behind many conversations
    for number in range(5):
        guard.record_failure(Attempt(f"4000{number}", f"c{number}", "192.0.2.1"))
    assert guard.blocked_by(Attempt("50000", "new", "192.0.2.1")) == "client"
    assert guard.blocked_by(Attempt("50000", "new", "192.0.2.2")) is None


def test_the_throttle_ends_with_the_window_and_is_shared_between_action_servers(log):
    clock = Clock()
    first, second = throttle(log, clock), throttle(log, clock)
    for number in range(3):
        first.record_failure(Attempt(f"1000{number}", "sender-1", None))
    assert second.blocked_by(Attempt("10009", "sender-1", None)) == "sender"
    clock.now += WINDOW_S + 1
    assert second.blocked_by(Attempt("10009", "sender-1", None)) is None


def test_exempt_addresses_and_limits_set_to_zero_do_not_count(log):
    clock = Clock()
    guard = throttle(log, clock, ThrottlePolicy(window_minutes=15, max_failures_per_order=0, per_sender=0,
                                                per_client=2))
    for _ in range(5):
        guard.record_failure(Attempt("10002", "s", "127.0.0.1"))
    assert guard.blocked_by(Attempt("10002", "s", "127.0.0.1")) is None
    guard.record_failure(Attempt("10002", "s", "2001:db8::1"))
    guard.record_failure(Attempt("10002", "s", "2001:db8::1"))
    assert guard.blocked_by(Attempt("10002", "s", "2001:db8::1")) == "client"


def test_what_is_counted_is_not_stored_in_clear(db):
    guard = throttle(DatabaseLog(lambda: db), Clock())
    guard.record_failure(Attempt("10002", "alice@example.com", "198.51.100.7"))
    with db.connect() as connection:
        keys = list(connection.execute(select(limit_events.c.key)).scalars())
    assert sorted(key.split(":")[0] for key in keys) == ["client", "order", "sender"]
    assert not any(secret in key for key in keys for secret in ("10002", "alice", "198.51"))
    assert hashed_key("order", "10002") in keys


@pytest.mark.parametrize("section, error", [
    ({"verification": {"throttle": {"per_client": -1}}}, "verification.throttle.per_client"),
    ({"verification": {"throttle": {"window_minutes": 0}}}, "verification.throttle.window_minutes"),
    ({"verification": {"throttle": {"store": "postgres"}}}, "verification.throttle.store"),
    ({"rate_limits": {"per_client": "many"}}, "rate_limits.per_client"),
    ({"rate_limits": {"message": "wait {seconds}"}}, "rate_limits.message"),
    ({"client_addresses": {"trusted_proxies": ["10.0.0.0/33"]}}, "client_addresses.trusted_proxies"),
    ({"client_addresses": {"exempt": "127.0.0.1"}}, "client_addresses.exempt"),
])
def test_bad_settings_are_refused_with_the_key_named(tmp_path, monkeypatch, section, error):
    import yaml

    path = tmp_path / "shop.yml"
    path.write_text(yaml.safe_dump(section))
    monkeypatch.setenv("SHOP_CONFIG", str(path))
    with pytest.raises(ValueError, match=error.replace(".", r"\.")):
        load_settings()


def test_the_shipped_settings_load():
    settings = load_settings()
    assert settings.throttle.window_minutes > 0 and settings.throttle.per_client > 0
    assert settings.rate_limits.per_client > 0 and "{retry_after}" in settings.rate_limits.message
    assert "127.0.0.0/8" in settings.client_addresses.exempt


# ------------------------------------------------------------------------------------------ in the form validation

@pytest.fixture
def guard(db, monkeypatch) -> VerificationThrottle:
    """The action server's throttle on the test database, with a clock the test moves."""
    guard = throttle(DatabaseLog(lambda: db), Clock())
    monkeypatch.setattr("actions.verification.get_throttle", lambda: guard)
    return guard


async def check(order_id: str, email: str, sender: str, client: str, failures: int = 0):
    """One order-number/email pair, as the order status form's validation gets it from a channel."""
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(slots={"verification_failures": failures},
                           new_slots={"order_id": order_id, "order_email": email},
                           active_loop="order_status_form", sender_id=sender)
    tracker.latest_message["metadata"] = {CLIENT_ADDRESS: client}
    domain = {"forms": {"order_status_form": {"required_slots": ["order_id", "order_email"]}}}
    return dispatcher, slot_events(await ValidateOrderStatusForm().run(dispatcher, tracker, domain))


async def test_past_a_limit_even_the_right_pair_is_not_verified_and_a_person_is_offered(guard):
    for number in range(5):  # five conversations from one address, each with one wrong pair
        _, slots = await check(f"1100{number}", "mallory@example.com", f"probe-{number}", "203.0.113.50")
        assert slots["verification_failures"] == 1
    dispatcher, slots = await check("10002", "alice@example.com", "probe-new", "203.0.113.50")
    assert slots["verified_order_id"] is None and slots["order_id"] is None
    assert slots["verification_failures"] == 3  # as after the third failure: the form ends
    assert dispatcher.messages == []  # exactly what the third wrong pair says
    skill = CollectingDispatcher()
    events = slot_events(ActionOrderStatus().run(skill, make_tracker(slots={"verification_failures": 3}), {}))
    assert "pass this to a person" in texts(skill) and events["pending_offer"] == "handoff"
    # the same right pair from another address and conversation is verified: the limit is per client here
    _, slots = await check("10002", "alice@example.com", "alice-at-home", "198.51.100.20")
    assert slots["verified_order_id"] == "10002"
    # once the window has passed, the throttled address gets through with the right pair
    guard.clock.now += WINDOW_S + 1
    _, slots = await check("10002", "alice@example.com", "probe-later", "203.0.113.50")
    assert slots["verified_order_id"] == "10002"


async def test_a_throttled_wrong_pair_and_a_throttled_right_pair_look_the_same(guard):
    for number in range(4):
        await check("10002", f"guess{number}@example.com", f"g{number}", f"198.51.100.{number}")
    wrong = await check("10002", "guess9@example.com", "g9", "198.51.100.9")
    right = await check("10002", "alice@example.com", "g10", "198.51.100.10")
    assert texts(wrong[0]) == texts(right[0]) and wrong[1] == right[1]
    assert right[1]["verified_order_id"] is None
