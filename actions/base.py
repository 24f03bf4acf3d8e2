"""What every action shares: database error handling, the verified-order check, listening to sentiment."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, Dict, List, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from actions.messages import say
from actions.sentiment import attend, offer_person_if_upset, since_latest_message
from shop.models import Order
from shop.orders import normalise_email, verify_order
from shop.settings import get_settings

logger = logging.getLogger(__name__)


def latest_intent(tracker: Tracker) -> Optional[str]:
    """The intent Rasa chose for the latest message, nlu_fallback included (rasa-sdk's helper skips it)."""
    return ((tracker.latest_message or {}).get("intent") or {}).get("name")


def is_verified(tracker: Tracker) -> bool:
    """True when the order number and email in the slots are the pair that was checked."""
    verified_id = tracker.get_slot("verified_order_id")
    return bool(
        verified_id
        and tracker.get_slot("order_id") == verified_id
        and normalise_email(tracker.get_slot("order_email")) == tracker.get_slot("verified_email")
    )


def verified_order(session: Session, tracker: Tracker) -> Optional[Order]:
    """The order of this conversation, re-checked against the database; None if not verified."""
    if not is_verified(tracker):
        return None
    return verify_order(session, tracker.get_slot("order_id"), tracker.get_slot("order_email"))


def locked_out(tracker: Tracker) -> bool:
    return int(tracker.get_slot("verification_failures") or 0) >= get_settings().max_verification_failures


def not_verified(dispatcher: CollectingDispatcher, tracker: Tracker) -> List[EventType]:
    """The answer of a skill whose form ended without a verified order: offer a person."""
    if locked_out(tracker):
        say(dispatcher, "verification_locked")
        return [
            SlotSet("verification_failures", 0),
            SlotSet("pending_offer", "handoff"),
            SlotSet("handoff_reason", "could not verify order number and email"),
        ]
    say(dispatcher, "verification_failed")
    return []


def drop_repeats(dispatcher: CollectingDispatcher, tracker: Tracker) -> None:
    """One customer message never gets the same text twice: a message already said since it (by an earlier action
    of the same turn, or earlier by this one) is dropped."""
    said = {event.get("text") for event in since_latest_message(tracker) if event.get("event") == "bot"}
    kept = []
    for message in dispatcher.messages:
        text = message.get("text")
        if text and text in said:
            continue
        said.add(text)
        kept.append(message)
    dispatcher.messages[:] = kept


class ShopAction(Action, ABC):
    """An action whose database trouble becomes an apology to the customer, not a silent failure, and that
    listens to how the customer feels: acknowledgement first, the answer, then a person offered if upset."""

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        attend(dispatcher, tracker)
        try:
            events = self.act(dispatcher, tracker, domain)
        except SQLAlchemyError:
            logger.exception("database error in %s", self.name())
            say(dispatcher, "technical_problem")
            return []
        if not any(message.get("buttons") for message in dispatcher.messages):  # one question per answer
            events += offer_person_if_upset(dispatcher, tracker, events)
        drop_repeats(dispatcher, tracker)
        return events

    @abstractmethod
    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        """The skill itself."""
