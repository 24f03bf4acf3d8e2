"""Sliding-window counters shared by the verification throttle (shop/throttle.py) and the channels' rate limits
(channels/ratelimit.py): how many times something happened under a key in the last N seconds.

Why three stores: limits only work when every replica counts in the same place. With replicas the lock store
already needs Redis, so the counts go there too; the embedded default (one process, SQLite) needs no Redis: the
throttle counts in the shop database, which every action server shares, and the rate limits in the process. A
Redis that stops answering falls back to the local store (logged once) instead of failing customers, and is tried
again after `retry_s`.

Keys are hashed before they are stored, so neither Redis nor the database holds the order numbers, conversation
ids or client addresses being counted.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import os
import threading
import time
import uuid
from collections import OrderedDict, deque
from functools import lru_cache
from typing import Callable, Deque, Dict, Iterable, Optional, Protocol, Sequence, Tuple

import redis
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, delete, func, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

logger = logging.getLogger(__name__)

REDIS_DB = 1  # the lock store's database (endpoints.yml): whoever can reach the lock store can reach these
REDIS_PREFIX = "shop:limits:"


def hashed_key(kind: str, value: str) -> str:
    """`kind:` and a digest of `value`: what is stored instead of the value itself."""
    return f"{kind}:{hashlib.sha256(value.encode('utf-8')).hexdigest()[:40]}"


@lru_cache(maxsize=64)
def _parsed(networks: Tuple[str, ...]) -> Tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(network, strict=False) for network in networks)


def in_networks(address: Optional[str], networks: Iterable[str]) -> bool:
    """True when `address` (an IP address) lies in one of `networks` (addresses or CIDR networks)."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return False
    return any(ip.version == network.version and ip in network for network in _parsed(tuple(networks)))


def redis_options(store: str) -> Optional[Dict[str, object]]:
    """Connection settings for the limits' Redis, or None to count locally. `store` auto: Redis when the lock store
    is a Redis one (LOCK_STORE_TYPE, as scripts/cluster.sh and deploy/ set it) at REDIS_HOST; redis: always;
    anything else: never."""
    lock_store = os.environ.get("LOCK_STORE_TYPE", "").lower()
    host = os.environ.get("REDIS_HOST", "").strip()
    if store == "redis" or (store == "auto" and "redis" in lock_store and host):
        return {"host": host or "localhost", "port": int(os.environ.get("REDIS_PORT") or 6379),
                "password": os.environ.get("REDIS_PASSWORD") or None, "db": REDIS_DB}
    return None


class WindowLog(Protocol):
    """Timestamps under keys, forgotten after their window."""

    def counts(self, keys: Sequence[str], window_s: float, now: float) -> Dict[str, int]:
        """How many timestamps each key has in (now - window_s, now]."""

    def add(self, keys: Sequence[str], window_s: float, now: float) -> None:
        """One timestamp `now` under each key."""

    def take(self, key: str, limit: int, window_s: float, now: float) -> float:
        """Add `now` under `key` if it has fewer than `limit` in the window and return 0; else add nothing and return
        the seconds until one of them leaves the window. Atomic across the processes that share the log."""


class MemoryLog:
    """In this process only (thread-safe); at most `max_keys` keys, the least recently used forgotten first."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._times: OrderedDict[str, Deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _window(self, key: str, window_s: float, now: float) -> Deque[float]:
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = deque()
            while len(self._times) > self.max_keys:
                self._times.popitem(last=False)
        self._times.move_to_end(key)
        while times and times[0] <= now - window_s:
            times.popleft()
        return times

    def counts(self, keys: Sequence[str], window_s: float, now: float) -> Dict[str, int]:
        with self._lock:
            return {key: len(self._window(key, window_s, now)) for key in keys}

    def add(self, keys: Sequence[str], window_s: float, now: float) -> None:
        with self._lock:
            for key in keys:
                self._window(key, window_s, now).append(now)

    def take(self, key: str, limit: int, window_s: float, now: float) -> float:
        with self._lock:
            times = self._window(key, window_s, now)
            if len(times) < limit:
                times.append(now)
                return 0.0
            return max(times[len(times) - limit] + window_s - now, 0.001)


# KEYS[1]: the key; ARGV: now, window (s), limit, a unique member. Returns {1, "0"} when taken, else {0, seconds}.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
local count = redis.call('ZCARD', KEYS[1])
local limit = tonumber(ARGV[3])
if count < limit then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
  return {1, '0'}
end
local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
return {0, tostring(tonumber(oldest[2]) + tonumber(ARGV[2]) - tonumber(ARGV[1]))}
"""


class RedisLog:
    """A sorted set of timestamps per key in Redis, expiring with its window: shared by every replica."""

    def __init__(self, client: redis.Redis, prefix: str = REDIS_PREFIX) -> None:
        self.client, self.prefix = client, prefix
        self._take = client.register_script(_TAKE)

    @classmethod
    def connect(cls, options: Dict[str, object], prefix: str = REDIS_PREFIX) -> RedisLog:
        """A client that gives up quickly: a slow Redis must not hold a customer's message for long."""
        return cls(redis.Redis(**options, socket_timeout=0.5, socket_connect_timeout=0.5), prefix)

    def counts(self, keys: Sequence[str], window_s: float, now: float) -> Dict[str, int]:
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zcount(self.prefix + key, f"({now - window_s}", "+inf")
            return {key: int(count) for key, count in zip(keys, pipe.execute(), strict=True)}

    def add(self, keys: Sequence[str], window_s: float, now: float) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.zremrangebyscore(self.prefix + key, "-inf", now - window_s)
                pipe.zadd(self.prefix + key, {uuid.uuid4().hex: now})
                pipe.pexpire(self.prefix + key, math.ceil(window_s * 1000))
            pipe.execute()

    def take(self, key: str, limit: int, window_s: float, now: float) -> float:
        taken, wait = self._take(keys=[self.prefix + key], args=[now, window_s, limit, uuid.uuid4().hex])
        return 0.0 if int(taken) else max(float(wait), 0.001)


limit_events = Table(
    "limit_events", MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(80), nullable=False, index=True),
    Column("at", Float, nullable=False, index=True),
)


class DatabaseLog:
    """A row per timestamp in table `limit_events` of the shop database (created when first needed), shared by
    every action server of the shop. Rows older than `keep_s` are deleted now and then."""

    def __init__(self, engine: Optional[Callable[[], Engine]] = None, keep_s: float = 3600,
                 cleanup_every: int = 200) -> None:
        self._engine = engine or self._shop_engine
        self.keep_s, self.cleanup_every = keep_s, cleanup_every
        self._ready: set[int] = set()
        self._added = 0

    @staticmethod
    def _shop_engine() -> Engine:
        import shop.db  # looked up on each call: the tests point shop.db.get_engine at their own database

        return shop.db.get_engine()

    def engine(self) -> Engine:
        engine = self._engine()
        if id(engine) not in self._ready:
            try:
                limit_events.create(engine, checkfirst=True)
            except SQLAlchemyError:
                if not inspect(engine).has_table(limit_events.name):
                    raise
                # another action server created it at the same moment
            self._ready.add(id(engine))
        return engine

    def counts(self, keys: Sequence[str], window_s: float, now: float) -> Dict[str, int]:
        query = (select(limit_events.c.key, func.count()).where(limit_events.c.key.in_(list(keys)))
                 .where(limit_events.c.at > now - window_s).group_by(limit_events.c.key))
        with self.engine().connect() as connection:
            found = {key: int(count) for key, count in connection.execute(query)}
        return {key: found.get(key, 0) for key in keys}

    def add(self, keys: Sequence[str], window_s: float, now: float) -> None:
        self._added += 1
        with self.engine().begin() as connection:
            connection.execute(limit_events.insert(), [{"key": key, "at": now} for key in keys])
            if self._added % self.cleanup_every == 0:
                connection.execute(delete(limit_events).where(limit_events.c.at < now - max(self.keep_s, window_s)))

    def take(self, key: str, limit: int, window_s: float, now: float) -> float:
        """Not atomic across processes (count, then insert): two at once may both pass. The throttle only counts."""
        with self.engine().connect() as connection:
            times = list(connection.execute(
                select(limit_events.c.at).where(limit_events.c.key == key).where(limit_events.c.at > now - window_s)
                .order_by(limit_events.c.at)).scalars())
        if len(times) < limit:
            self.add([key], window_s, now)
            return 0.0
        return max(times[len(times) - limit] + window_s - now, 0.001)


class FallbackLog:
    """`primary` (Redis) while it answers; `fallback` (local) for `retry_s` after it failed, the outage and the
    recovery each logged once."""

    def __init__(self, primary: WindowLog, fallback: WindowLog, what: str, retry_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.primary, self.fallback, self.what, self.retry_s, self.clock = primary, fallback, what, retry_s, clock
        self._failed_at: Optional[float] = None

    def _call(self, method: str, *args: object) -> object:
        if self._failed_at is None or self.clock() - self._failed_at >= self.retry_s:
            try:
                result = getattr(self.primary, method)(*args)
            except redis.RedisError as error:
                if self._failed_at is None:
                    logger.error(f"{self.what}: Redis unreachable ({error!r}); counting locally until it is back, so "
                                 f"the limits are not shared between replicas meanwhile.")
                self._failed_at = self.clock()
            else:
                if self._failed_at is not None:
                    logger.warning(f"{self.what}: Redis reachable again; the limits are shared again.")
                    self._failed_at = None
                return result
        return getattr(self.fallback, method)(*args)

    def counts(self, keys: Sequence[str], window_s: float, now: float) -> Dict[str, int]:
        return self._call("counts", keys, window_s, now)  # type: ignore[return-value]

    def add(self, keys: Sequence[str], window_s: float, now: float) -> None:
        self._call("add", keys, window_s, now)

    def take(self, key: str, limit: int, window_s: float, now: float) -> float:
        return self._call("take", key, limit, window_s, now)  # type: ignore[return-value]


def window_log(store: str, local: Callable[[], WindowLog], what: str) -> WindowLog:
    """The log a setting `store` asks for: Redis (with `local` as its fallback) or `local` alone."""
    options = redis_options(store)
    if options is None:
        return local()
    logger.info(f"{what}: counting in Redis at {options['host']}:{options['port']} (db {options['db']}).")
    return FallbackLog(RedisLog.connect(options), local(), what)

