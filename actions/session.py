"""The start of every conversation: the shop's name from shop.yml goes into the `shop_name` slot, so the greeting
in domain.yml ("I'm the {shop_name} assistant") names the shop that runs the bot, not the demo shop."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from shop.settings import get_settings


class ActionSessionStart(Action):
    def name(self) -> str:
        return "action_session_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[str, Any]) -> List[EventType]:
        # Rasa's own session start, plus the shop's name; the domain does not carry slots over to a new session.
        return [SessionStarted(), SlotSet("shop_name", get_settings().shop_name), ActionExecuted("action_listen")]
