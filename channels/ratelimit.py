"""Who a message comes from, and how many messages one client may send (shop.yml `rate_limits`, `client_addresses`).

Why: each message costs a model prediction and often a database lookup; one client sending hundreds a minute slows
every other customer down, and guessing order numbers wholesale starts with many messages. Each channel counts the
messages of a client address in a sliding window (in Redis when the lock store uses it, so that all replicas share
the count; else in this process: shop/limits.py) and answers the excess politely: REST with HTTP 429 and
Retry-After, socket.io (web chat) and Slack with a message saying when to try again. Slack's requests all come from
Slack, so there a client is a Slack team and user.

The client address is also put in every message's metadata (`client_address`), where the action server's
verification throttle (shop/throttle.py) finds it. Behind a balancer the connection comes from the balancer, so the
address is read from X-Forwarded-For, but only when the connection comes from a trusted proxy, and from the right:
the entries on the left are whatever the client wrote, the last one is what the balancer saw.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from functools import lru_cache
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from shop.limits import MemoryLog, WindowLog, hashed_key, in_networks, window_log
from shop.settings import RateLimits, get_settings
from shop.throttle import CLIENT_ADDRESS

logger = logging.getLogger(__name__)

MAX_CLIENT_CHARS = 255


def _normalised(address: str) -> str:
    """An address without port or brackets ('[::1]:80' -> '::1', '1.2.3.4:5' -> '1.2.3.4'); other text as is."""
    address = address.strip().strip('"')
    if address.startswith("[") and "]" in address:
        address = address[1:address.index("]")]
    elif address.count(":") == 1:
        address = address.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address[:MAX_CLIENT_CHARS]


def client_address(peer: str, forwarded_for: Sequence[str], trusted_proxies: Sequence[str]) -> str:
    """The customer's address: the connection's `peer`, or, while the hop in hand is a trusted proxy, the entry of
    X-Forwarded-For (`forwarded_for`, one or more header values) that proxy added, from the right."""
    hops = [hop for value in forwarded_for for hop in (value or "").split(",") if hop.strip()]
    address = _normalised(peer or "")
    while hops and in_networks(address, trusted_proxies):
        address = _normalised(hops.pop())
    return address or "unknown"


def request_client(request: Request) -> str:
    """The client address of a Sanic request (shop.yml `client_addresses.trusted_proxies`)."""
    trusted = get_settings().client_addresses.trusted_proxies
    return client_address(request.ip, request.headers.getall("x-forwarded-for", []), trusted)


def environ_client(environ: Mapping[str, Any]) -> str:
    """The client address of a socket.io connection, from the request that opened it."""
    request = environ.get("sanic.request")
    if request is not None:
        return request_client(request)
    forwarded = environ.get("HTTP_X_FORWARDED_FOR")
    return client_address(str(environ.get("REMOTE_ADDR", "")), [forwarded] if forwarded else [],
                          get_settings().client_addresses.trusted_proxies)


def with_client(metadata: Optional[Dict[str, Any]], client: str) -> Dict[str, Any]:
    """The message metadata with the client address the channel saw; one the client sent itself is replaced."""
    return {**(metadata or {}), CLIENT_ADDRESS: client}


class RateLimiter:
    def __init__(self, limits: RateLimits, log: WindowLog, exempt: Sequence[str] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self.limits, self.log, self.exempt, self.clock = limits, log, tuple(exempt), clock

    def retry_after(self, client: str) -> int:
        """0 when `client` may send one more message now (and it is counted); else the whole seconds to wait."""
        if not self.limits.per_client or in_networks(client, self.exempt):
            return 0
        wait = self.log.take(hashed_key("rate", client), self.limits.per_client, self.limits.window_seconds,
                             self.clock())
        return math.ceil(wait) if wait > 0 else 0

    def message(self, retry_after: int) -> str:
        return self.limits.message.format(retry_after=retry_after)

    def too_many_requests(self, retry_after: int) -> HTTPResponse:
        """HTTP 429 with Retry-After; the body is a bot message in the REST channel's format, so that a chat client
        that shows replies shows why."""
        return response.json([{"text": self.message(retry_after)}], status=429,
                             headers={"Retry-After": str(retry_after)})


@lru_cache(maxsize=1)
def get_rate_limiter() -> RateLimiter:
    """This process's limiter, from shop.yml: Redis when configured (shop/limits.py), else in memory."""
    settings = get_settings()
    log = window_log(settings.rate_limits.store, MemoryLog, "Rate limits")
    return RateLimiter(settings.rate_limits, log, settings.client_addresses.exempt)
