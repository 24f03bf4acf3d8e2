"""The order-number-and-email check every order skill's form starts with.

Each skill's form validation subclasses VerifiedOrderForm: the form asks for nothing else until the pair
matches, a wrong pair is answered the same way whether or not the order exists, and after too many
failures the form ends so the skill can offer a person. Failures are also counted across conversations
(shop/throttle.py): past those limits the pair is not even checked, and the customer is answered as after
too many failures.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from typing import Any, Dict, List, Optional

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from actions.base import drop_repeats, is_verified, locked_out
from actions.messages import checked, say
from actions.sentiment import attend
from shop.db import session_scope
from shop.models import Order
from shop.orders import normalise_email, normalise_reference, verify_order
from shop.settings import get_settings
from shop.throttle import CLIENT_ADDRESS, Attempt, get_throttle

logger = logging.getLogger(__name__)

VERIFICATION_SLOTS = ["order_id", "order_email"]


def client_of(tracker: Tracker) -> Optional[str]:
    """The client address our channels put in the latest message's metadata; None from other channels."""
    metadata = (tracker.latest_message or {}).get("metadata")
    client = metadata.get(CLIENT_ADDRESS) if isinstance(metadata, dict) else None
    return str(client)[:255] if isinstance(client, str | int) and str(client) else None


class VerifiedOrderForm(FormValidationAction):
    """Validation shared by the order status, return, refund and cancel forms."""

    @abstractmethod
    def name(self) -> str:
        """validate_<form name>"""

    def after_verification(self, session: Session, order: Order, domain_slots: List[str]) -> List[str]:
        """The slots still to fill once the order is verified; [] ends the form (the skill explains why)."""
        return domain_slots

    def on_verified(self, order: Order) -> List[EventType]:
        """Slots a skill can fill itself as soon as it knows the order."""
        return []

    async def required_slots(
        self, domain_slots: List[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[str]:
        if locked_out(tracker):
            return []
        if not is_verified(tracker):
            return VERIFICATION_SLOTS
        try:
            with session_scope() as session:
                order = session.get(Order, tracker.get_slot("verified_order_id"))
                return self.after_verification(session, order, domain_slots) if order else []
        except SQLAlchemyError:
            logger.exception("database error while choosing the next slot")
            return []

    def validate_order_id(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        return checked(dispatcher, "order_id", normalise_reference(value), complaint="invalid_order_id")

    def validate_order_email(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        return checked(dispatcher, "order_email", normalise_email(value), complaint="invalid_email")

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        attend(dispatcher, tracker)  # an upset customer hears the acknowledgement before any complaint about input
        events = await super().run(dispatcher, tracker, domain)
        drop_repeats(dispatcher, tracker)
        return events

    async def get_validation_events(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        events = await super().get_validation_events(dispatcher, tracker, domain)
        tracker.add_slots(events)
        verification = self._verify(dispatcher, tracker)
        tracker.add_slots(verification)
        return events + verification

    def _verify(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> List[EventType]:
        reference, email = tracker.get_slot("order_id"), tracker.get_slot("order_email")
        if not reference or not email or is_verified(tracker):
            return []
        attempt = Attempt(order=normalise_reference(reference), sender=tracker.sender_id, client=client_of(tracker))
        try:
            throttle = get_throttle()
            throttled = throttle.blocked_by(attempt)
            with session_scope() as session:
                order = verify_order(session, reference, email)
                if order is not None and throttled is None:
                    return [
                        SlotSet("order_id", order.id),
                        SlotSet("order_email", normalise_email(email)),
                        SlotSet("verified_order_id", order.id),
                        SlotSet("verified_email", normalise_email(email)),
                        SlotSet("verification_failures", 0),
                        *self.on_verified(order),
                    ]
            if order is None:  # a wrong pair counts, throttled or not; a right one never does
                throttle.record_failure(attempt)
        except SQLAlchemyError:
            logger.exception("database error while verifying an order")
            say(dispatcher, "technical_problem")
            return [SlotSet("order_email", None)]
        failures = int(tracker.get_slot("verification_failures") or 0) + 1
        if throttled is not None:
            # answered as the last allowed failure: the form ends, the skill offers a person (actions/base.py)
            failures = max(failures, get_settings().max_verification_failures)
            logger.warning("verification throttled (too many failures per %s) in conversation %s", throttled,
                           tracker.sender_id)
        else:
            logger.info("verification failed (%d in a row) in conversation %s", failures, tracker.sender_id)
        events: List[EventType] = [
            SlotSet("order_id", None),
            SlotSet("order_email", None),
            SlotSet("verified_order_id", None),
            SlotSet("verified_email", None),
            SlotSet("verification_failures", failures),
        ]
        tracker.add_slots(events)
        if not locked_out(tracker):
            say(dispatcher, "verification_failed")
        return events

