"""Skill: a person. On request, or after repeated failure, a ticket with the reason and transcript."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.base import ShopAction, latest_intent
from actions.messages import say
from shop.db import session_scope
from shop.handoff import create_ticket, format_transcript
from shop.settings import get_settings

NOT_UNDERSTOOD_INTENTS = {"nlu_fallback", "out_of_scope"}


def recent_messages(tracker: Tracker, limit: int) -> List[Tuple[str, str]]:
    """The last `limit` customer and bot messages of the conversation, oldest first."""
    messages = [
        ("customer" if event["event"] == "user" else "bot", event.get("text") or "")
        for event in tracker.events
        if event.get("event") in ("user", "bot") and event.get("text")
    ]
    return messages[-limit:]


def consecutive_not_understood(tracker: Tracker) -> int:
    """How many of the latest customer messages in a row the assistant could not place."""
    count = 0
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        if (event.get("parse_data") or {}).get("intent", {}).get("name") not in NOT_UNDERSTOOD_INTENTS:
            break
        count += 1
    return count


class ActionHandoff(ShopAction):
    def name(self) -> str:
        return "action_handoff"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        settings = get_settings()
        reason = tracker.get_slot("handoff_reason") or "customer asked for a person"
        transcript = format_transcript(recent_messages(tracker, settings.transcript_turns))
        with session_scope() as session:
            ticket = create_ticket(session, tracker.sender_id, reason, transcript)
            ticket_id = ticket.public_id
        say(
            dispatcher, "handoff_created", ticket_id=ticket_id, next_steps=settings.handoff_next_steps
        )
        return [SlotSet("pending_offer", None), SlotSet("handoff_reason", None)]


class ActionDeclineOffer(ShopAction):
    def name(self) -> str:
        return "action_decline_offer"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        dispatcher.utter_message(response="utter_anything_else")
        return [SlotSet("pending_offer", None), SlotSet("handoff_reason", None)]


class ActionFallback(ShopAction):
    """Says what the bot can do; after repeated misunderstandings offers a person instead."""

    def name(self) -> str:
        return "action_fallback"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        if consecutive_not_understood(tracker) >= get_settings().fallbacks_before_offer:
            say(dispatcher, "offer_handoff_not_understood")
            return [SlotSet("pending_offer", "handoff"), SlotSet("handoff_reason", "the assistant did not understand")]
        if latest_intent(tracker) == "out_of_scope":
            say(dispatcher, "out_of_scope")
        else:
            say(dispatcher, "default")
        return []
