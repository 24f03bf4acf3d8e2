"""Rasa's SQL tracker store, made to fail a turn when its database is down instead of forgetting the conversation.

Why: Rasa 3.6 wraps every tracker store in a FailSafeTrackerStore. When the database cannot be read it hands the
processor no tracker, so the customer's conversation silently starts over (a customer halfway through a return got
"What would you like to do about it?" in tests/e2e/test_cluster_faults.py); when it cannot be written it keeps the
events in that replica's memory, where they are lost for good. Here a database error is raised as
`TrackerStoreUnavailable`, a BaseException so that the wrapper's `except Exception` lets it through; the project's
channels (channels/guard.py) catch it and give the customer the apology and a request to try again, and the next
turn after the database is back reads the conversation as it was.

endpoints.yml: `type: shop.tracker_store.StrictSQLTrackerStore`, `url: ${TRACKER_STORE_URL}` (an SQLAlchemy URL).
"""

from __future__ import annotations

from typing import Optional

import sqlalchemy.exc
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker


class TrackerStoreUnavailable(BaseException):
    """The conversations' database could not be read or written; the turn must not go on without it."""


class StrictSQLTrackerStore(SQLTrackerStore):
    async def retrieve(self, sender_id: str) -> Optional[DialogueStateTracker]:
        try:
            return await super().retrieve(sender_id)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise self._unavailable(f"conversation {sender_id} could not be read", exc) from exc

    async def retrieve_full_tracker(self, sender_id: str) -> Optional[DialogueStateTracker]:
        try:
            return await super().retrieve_full_tracker(sender_id)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise self._unavailable(f"conversation {sender_id} could not be read", exc) from exc

    async def save(self, tracker: DialogueStateTracker) -> None:
        try:
            await super().save(tracker)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise self._unavailable(f"conversation {tracker.sender_id} could not be saved", exc) from exc

    def _unavailable(self, what: str, error: Exception) -> TrackerStoreUnavailable:
        """The error to raise; first, the tables are created if they are missing (Rasa creates them only at start,
        so a database that was down then would otherwise stay unusable until a restart)."""
        try:
            self.Base.metadata.create_all(self.engine)
        except sqlalchemy.exc.SQLAlchemyError:
            pass  # still down: the next turn tries again
        return TrackerStoreUnavailable(f"{what}: {error}")
