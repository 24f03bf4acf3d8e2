"""How the dialogue listens to the sentiment of customer messages (custom_components/sentiment_analyzer.py).

Every action that answers the customer (ShopAction and the order forms' validation) first calls `attend`:
- the sentiment of each customer message is stored with the conversation (shop/feedback.py);
- a frustrated message gets one acknowledgement before the answer, however many actions answer it. Frustrated is
  the FrustrationDetector's verdict (custom_components/frustration_detector.py): a calm "I'd like to return the
  broken lamp" is a service request, not an upset customer. Pipelines without it fall back to a clearly negative
  sentiment.
ShopAction then calls `offer_person_if_upset` after its answer: two frustrated messages in a row, or a frustrated
complaint, lead to the offer of a person, at most once per conversation: a yes/no question outside a form (the
handoff rules take the answer), and inside a form a "Talk to a person" button, since a yes or no there would
answer the form's question.
The satisfaction question at a happy ending is in actions/satisfaction.py.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from actions.messages import render, say
from shop.db import session_scope
from shop.feedback import TurnSentiment, record_turns
from shop.settings import get_settings

logger = logging.getLogger(__name__)

LABELS = ("negative", "neutral", "positive")
UPSET_TWICE = "the customer was upset in two messages in a row"
UPSET_COMPLAINT = "the customer complained and was upset"


def message_sentiment(parse_data: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The `sentiment` the NLU put in a message's parse data; None for messages it never saw (button payloads)."""
    sentiment = (parse_data or {}).get("sentiment")
    return sentiment if isinstance(sentiment, dict) and sentiment.get("label") in LABELS else None


def user_events(tracker: Tracker) -> List[Dict[str, Any]]:
    return [event for event in tracker.events if event.get("event") == "user"]


def customer_turns(tracker: Tracker) -> List[TurnSentiment]:
    """Every customer message of the conversation that has a sentiment, oldest first."""
    turns = []
    for index, event in enumerate(user_events(tracker), start=1):
        parse_data = event.get("parse_data") or {}
        sentiment = message_sentiment(parse_data)
        if sentiment:
            turns.append(TurnSentiment(
                message_key=str(event.get("message_id") or f"turn-{index}"), turn=index, label=sentiment["label"],
                confidence=float(sentiment.get("confidence", 0.0)), scores=dict(sentiment.get("scores") or {}),
                intent=(parse_data.get("intent") or {}).get("name")))
    return turns


def clearly_negative(sentiment: Optional[Dict[str, Any]]) -> bool:
    return bool(sentiment and sentiment["label"] == "negative"
                and float(sentiment.get("confidence", 0.0)) >= get_settings().sentiment.negative_confidence)


def frustrated(parse_data: Optional[Dict[str, Any]]) -> bool:
    """True when the message sounds frustrated (see the module docstring)."""
    frustration = (parse_data or {}).get("frustration")
    if isinstance(frustration, dict) and "frustrated" in frustration:
        return bool(frustration["frustrated"])
    return clearly_negative(message_sentiment(parse_data))


def is_complaint(text: str) -> bool:
    """True when the text contains one of shop.yml's complaint words or phrases (whole words, any case)."""
    words = get_settings().sentiment.complaint_words
    return bool(words) and re.search(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b", text or "", re.I) is not None


def latest_sentiment(tracker: Tracker) -> Optional[Dict[str, Any]]:
    return message_sentiment(tracker.latest_message)


def since_latest_message(tracker: Tracker) -> List[Dict[str, Any]]:
    """The events after the latest customer message: what the bot already did about it."""
    events = list(tracker.events)
    for index in range(len(events) - 1, -1, -1):
        if events[index].get("event") == "user":
            return events[index + 1:]
    return events


def attend(dispatcher: CollectingDispatcher, tracker: Tracker) -> None:
    """Stores the conversation's sentiment trail; acknowledges a clearly negative message once, before any answer."""
    turns = customer_turns(tracker)
    if turns:
        try:
            with session_scope() as session:
                record_turns(session, tracker.sender_id, turns)
        except SQLAlchemyError:  # the record must never cost the customer an answer
            logger.exception("could not store the sentiment of conversation %s", tracker.sender_id)
    if frustrated(tracker.latest_message):
        acknowledgement = render("acknowledge_upset")
        if not any(e.get("event") == "bot" and e.get("text") == acknowledgement for e in since_latest_message(tracker)):
            say(dispatcher, "acknowledge_upset")


def upset_reason(tracker: Tracker) -> Optional[str]:
    """Why the customer should be offered a person now, or None."""
    if not frustrated(tracker.latest_message):
        return None
    earlier = user_events(tracker)[:-1]
    if earlier and frustrated(earlier[-1].get("parse_data")):
        return UPSET_TWICE
    if is_complaint(tracker.latest_message.get("text") or ""):
        return UPSET_COMPLAINT
    return None


def offer_person_if_upset(
    dispatcher: CollectingDispatcher, tracker: Tracker, events: List[EventType]
) -> List[EventType]:
    """The offer of a person when the customer is upset, once per conversation, unless something else is on offer.
    Inside a form it is a button (the customer's yes or no would answer the form's question)."""
    if any(e.get("event") == "slot" and e.get("name") == "pending_offer" for e in events) or tracker.get_slot(
            "pending_offer"):
        return []
    reason = upset_reason(tracker)
    offered = any(e.get("event") == "slot" and e.get("name") == "handoff_reason" and e.get("value") in
                  (UPSET_TWICE, UPSET_COMPLAINT) for e in tracker.events)
    if reason is None or offered:
        return []
    if tracker.active_loop.get("name"):
        say(dispatcher, "offer_handoff_upset_in_form")
        return [SlotSet("handoff_reason", reason)]
    say(dispatcher, "offer_handoff_upset")
    return [SlotSet("pending_offer", "handoff"), SlotSet("handoff_reason", reason)]


def ended_happily(tracker: Tracker) -> bool:
    """The last customer message is positive, or neutral right after a positive one; none of the last three negative."""
    sentiments = [message_sentiment(event.get("parse_data")) for event in user_events(tracker)][-3:]
    if not sentiments or sentiments[-1] is None or any(clearly_negative(s) for s in sentiments):
        return False
    if sentiments[-1]["label"] == "positive":
        return True
    return sentiments[-1]["label"] == "neutral" and len(sentiments) > 1 and (sentiments[-2] or {}).get(
        "label") == "positive"


def satisfaction_asked(tracker: Tracker) -> bool:
    return any(e.get("event") == "slot" and e.get("name") == "pending_offer" and e.get("value") == "satisfaction"
               for e in tracker.events)
