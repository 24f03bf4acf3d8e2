"""Skill: a person. On request, or after repeated failure, a ticket with the reason and transcript."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.base import ShopAction, latest_intent
from actions.generate import KnowledgeAction, answered_from_knowledge, knowledge_reply, utter_reply
from actions.messages import say
from actions.sentiment import customer_turns, message_sentiment
from actions.understanding import (
    ask_to_clarify,
    ask_what_to_do,
    clarification_options,
    just_asked_to_clarify,
)
from generator.config import get_config
from generator.service import Reply
from shop.db import session_scope
from shop.handoff import create_ticket, format_transcript
from shop.settings import get_settings

NOT_UNDERSTOOD_INTENTS = {"nlu_fallback", "out_of_scope"}


def speaker(event: Dict[str, Any]) -> str:
    """'bot', or 'customer' with the sentiment of that message when the NLU gave one: the ticket's sentiment trail."""
    if event["event"] == "bot":
        return "bot"
    sentiment = message_sentiment(event.get("parse_data"))
    return f"customer [{sentiment['label']} {float(sentiment.get('confidence', 0)):.2f}]" if sentiment else "customer"


def recent_messages(tracker: Tracker, limit: int) -> List[Tuple[str, str]]:
    """The last `limit` customer and bot messages of the conversation, oldest first."""
    messages = [
        (speaker(event), event.get("text") or "")
        for event in tracker.events
        if event.get("event") in ("user", "bot") and event.get("text")
    ]
    return messages[-limit:]


def sentiment_trail(tracker: Tracker) -> str:
    """One line for the person who takes over: how each customer message felt, oldest first."""
    labels = [turn.label for turn in customer_turns(tracker)]
    return f"customer sentiment, oldest first: {' > '.join(labels)}\n" if labels else ""


def consecutive_not_understood(tracker: Tracker) -> int:
    """How many of the latest customer messages in a row the assistant could not place. A message that NLU
    could not place but the knowledge base answered counts as understood."""
    count, answered = 0, False
    for event in reversed(tracker.events):
        if event.get("event") == "bot":
            answered = answered or answered_from_knowledge(event)
            continue
        if event.get("event") != "user":
            continue
        if answered or (event.get("parse_data") or {}).get("intent", {}).get("name") not in NOT_UNDERSTOOD_INTENTS:
            break
        count += 1
    return count


class ActionHandoff(ShopAction):
    def name(self) -> str:
        return "action_handoff"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        settings = get_settings()
        reason = tracker.get_slot("handoff_reason") or "customer asked for a person"
        transcript = sentiment_trail(tracker) + format_transcript(recent_messages(tracker, settings.transcript_turns))
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


class ActionFallback(KnowledgeAction):
    """A message NLU is unsure about gets "Did you mean ...?" when the classifier has plausible guesses
    (actions/understanding.py). Otherwise it is answered from the knowledge base when a passage matches it closely
    (generator.yml `min_score_unrecognised`), or the bot says what it can do; a second unclear message after a
    "Did you mean ...?", or repeated misunderstandings, bring the offer of a person instead."""

    def name(self) -> str:
        return "action_fallback"

    async def knowledge(self, tracker: Tracker) -> Optional[Reply]:
        if latest_intent(tracker) not in NOT_UNDERSTOOD_INTENTS or self.options_to_offer(tracker):
            return None  # a fallback for a message NLU did place, or a question to ask: no knowledge base
        return await knowledge_reply(tracker, min_score=get_config().min_score_unrecognised)

    @staticmethod
    def unsure(tracker: Tracker) -> bool:
        return latest_intent(tracker) == "nlu_fallback"

    def options_to_offer(self, tracker: Tracker) -> List[str]:
        """The skills of a "Did you mean ...?" question, or [] when the answer is no such question: the classifier
        is sure, has no plausible guess, or just asked one."""
        if not self.unsure(tracker) or just_asked_to_clarify(tracker):
            return []
        return clarification_options(tracker.latest_message)

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        options = self.options_to_offer(tracker)
        if options:
            ask_to_clarify(dispatcher, options)
            return []
        reply = self.reply()
        if reply is not None and reply.grounded:
            utter_reply(dispatcher, reply)
            return []
        rephrased_unclear = self.unsure(tracker) and just_asked_to_clarify(tracker)
        if rephrased_unclear or consecutive_not_understood(tracker) >= get_settings().fallbacks_before_offer:
            say(dispatcher, "offer_handoff_not_understood")
            return [SlotSet("pending_offer", "handoff"), SlotSet("handoff_reason", "the assistant did not understand")]
        if latest_intent(tracker) == "out_of_scope":
            say(dispatcher, "out_of_scope")
            return []
        # An unclear message with an order number or email: ask what to do with that order, as for the number alone.
        asked = self.unsure(tracker) and not tracker.active_loop.get("name") and ask_what_to_do(dispatcher, tracker)
        if not asked:
            say(dispatcher, "default")
        return []
