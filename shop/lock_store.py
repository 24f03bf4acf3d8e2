"""A Redis lock store whose tickets are issued and returned atomically, for Rasa replicas.

Why not Rasa's `type: redis`: Rasa 3.6's RedisLockStore changes a conversation's lock by GET, change in Python, SET.
Two replicas taking a ticket at the same moment both read "no ticket", both write "ticket 1", and both handle their
message at once; the second save then skips the first one's events (the SQL tracker store appends only what is
beyond the stored count), so a customer message vanished from the conversation. tests/e2e/test_cluster_faults.py
caught it with four messages of one conversation sent to two replicas at once. Here every change of a lock is one
Redis transaction (WATCH/MULTI, retried when another replica changed the lock meanwhile); reading and waiting are
Rasa's.

endpoints.yml: `type: ${LOCK_STORE_TYPE}` with LOCK_STORE_TYPE=shop.lock_store.AtomicRedisLockStore; `url`, `port`,
`password`, `db` as for Rasa's Redis lock store.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

import redis
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

LockChange = Callable[[Optional[TicketLock]], Optional[TicketLock]]


class AtomicRedisLockStore(RedisLockStore):
    def __init__(self, endpoint_config: Optional[EndpointConfig] = None, **options: Any) -> None:
        if endpoint_config is not None:
            options = {**endpoint_config.kwargs, "host": endpoint_config.url or "localhost", **options}
        if not options.get("password"):
            options.pop("password", None)  # an empty REDIS_PASSWORD means none
        super().__init__(**options)

    def _change(self, conversation_id: str, change: LockChange) -> Optional[TicketLock]:
        """Apply `change` to the stored lock in one transaction; a lock it returns as None is deleted."""
        key = self.key_prefix + conversation_id
        with self.red.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    stored = pipe.get(key)
                    changed = change(TicketLock.from_dict(json.loads(stored)) if stored else None)
                    pipe.multi()
                    if changed is None:
                        pipe.delete(key)
                    else:
                        pipe.set(key, changed.dumps())
                    pipe.execute()
                    return changed
                except redis.WatchError:
                    continue  # another replica changed this lock between our read and write: read again

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = 60) -> int:
        issued = []

        def take_ticket(lock: Optional[TicketLock]) -> TicketLock:
            lock = lock or TicketLock(conversation_id)
            issued.append(lock.issue_ticket(lock_lifetime))
            return lock

        try:
            self._change(conversation_id, take_ticket)
        except redis.RedisError as exc:
            raise LockError(f"Error while acquiring lock. Error:\n{exc}") from exc
        return issued[-1]

    def update_lock(self, conversation_id: str) -> None:
        def without_expired(lock: Optional[TicketLock]) -> Optional[TicketLock]:
            if lock is not None:
                lock.remove_expired_tickets()
            return lock

        self._change(conversation_id, without_expired)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        self.cleanup(conversation_id, ticket_number)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Return the ticket, and delete the lock when no one else holds one, as one step."""

        def returned(lock: Optional[TicketLock]) -> Optional[TicketLock]:
            if lock is None:
                return None
            lock.remove_ticket_for(ticket_number)
            return lock if lock.is_someone_waiting() else None

        self._change(conversation_id, returned)
