"""Failed order checks counted across conversations (shop.yml `verification.throttle`).

Why: the per-conversation limit (`verification.max_failures`) ends one conversation after three wrong pairs, but a
new conversation (a new REST `sender`, a new web chat session) starts from zero, so a script could still try
thousands of order-number/email pairs. Here every failure is counted under the order number tried, the conversation
id and the client address (from the channel's message metadata, `client_address`), in a sliding window shared by all
action servers (Redis, or the shop database: shop/limits.py). Past any limit an attempt is throttled: it gets the
answer of a wrong pair and the offer of a person, and is not checked at all, so a right pair found by guessing is
worth nothing until the window has passed. Wrong pairs tried while throttled still count: a script that keeps going
stays throttled; a customer who waits gets through.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, List, Optional, Sequence, Tuple

from shop.limits import DatabaseLog, WindowLog, hashed_key, in_networks, window_log
from shop.order_numbers import compact
from shop.settings import ThrottlePolicy, get_settings

logger = logging.getLogger(__name__)

CLIENT_ADDRESS = "client_address"  # the message metadata key our channels put the client's address under


@dataclass(frozen=True)
class Attempt:
    """Who tried which order: the order number (or return id) as normalised, the conversation id, the client
    address or channel-specific client id (None when the channel did not say)."""

    order: Optional[str]
    sender: Optional[str]
    client: Optional[str]


class VerificationThrottle:
    def __init__(self, policy: ThrottlePolicy, log: WindowLog, exempt_clients: Sequence[str] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self.policy, self.log, self.exempt_clients, self.clock = policy, log, tuple(exempt_clients), clock

    @property
    def window_s(self) -> float:
        return self.policy.window_minutes * 60

    def _limits(self, attempt: Attempt) -> List[Tuple[str, str, int]]:
        """(kind, stored key, limit) for each limit that applies to the attempt."""
        limits = []
        if attempt.order and self.policy.max_failures_per_order:
            limits.append(("order", hashed_key("order", compact(attempt.order)), self.policy.max_failures_per_order))
        if attempt.sender and self.policy.per_sender:
            limits.append(("sender", hashed_key("sender", attempt.sender), self.policy.per_sender))
        if attempt.client and self.policy.per_client and not in_networks(attempt.client, self.exempt_clients):
            limits.append(("client", hashed_key("client", attempt.client), self.policy.per_client))
        return limits

    def blocked_by(self, attempt: Attempt) -> Optional[str]:
        """The first limit ('order', 'sender', 'client') the attempt is past, or None."""
        limits = self._limits(attempt)
        if not limits:
            return None
        counts = self.log.counts([key for _, key, _ in limits], self.window_s, self.clock())
        return next((kind for kind, key, limit in limits if counts[key] >= limit), None)

    def record_failure(self, attempt: Attempt) -> None:
        limits = self._limits(attempt)
        if limits:
            self.log.add([key for _, key, _ in limits], self.window_s, self.clock())


@lru_cache(maxsize=1)
def get_throttle() -> VerificationThrottle:
    """The action server's throttle, from shop.yml: Redis when configured (shop/limits.py), else the shop database."""
    settings = get_settings()
    log = window_log(settings.throttle.store, DatabaseLog, "Verification throttle")
    return VerificationThrottle(settings.throttle, log, settings.client_addresses.exempt)
