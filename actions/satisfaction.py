"""Skill: one satisfaction question when a conversation ends happily, and the answer stored."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.base import ShopAction
from actions.messages import say
from actions.sentiment import ended_happily, latest_sentiment, satisfaction_asked
from shop.db import session_scope
from shop.feedback import save_satisfaction
from shop.settings import get_settings


class ActionAskSatisfaction(ShopAction):
    """Runs after every goodbye; asks once per conversation, and only when it ends happily."""

    def name(self) -> str:
        return "action_ask_satisfaction"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        if not get_settings().sentiment.ask_satisfaction or satisfaction_asked(tracker) or not ended_happily(tracker):
            return []
        say(dispatcher, "ask_satisfaction")
        return [SlotSet("pending_offer", "satisfaction")]


class ActionSaveSatisfaction(ShopAction):
    """Whatever the customer answers to the question is stored, with the 1-5 rating when it contains one."""

    def name(self) -> str:
        return "action_save_satisfaction"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        sentiment = latest_sentiment(tracker)
        with session_scope() as session:
            save_satisfaction(session, tracker.sender_id, tracker.latest_message.get("text") or "",
                              sentiment["label"] if sentiment else None)
        say(dispatcher, "satisfaction_thanks")
        return [SlotSet("pending_offer", None)]
