"""Leaving a form when the customer says "stop": forget the half-filled answers, keep a verified order."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Dict, List

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.base import ShopAction, is_verified
from actions.messages import say

TASK_SLOTS = ("return_item", "return_reason", "refund_method", "cancel_confirmed", "pending_offer")


class ActionStopForm(ShopAction):
    def name(self) -> str:
        return "action_stop_form"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        say(dispatcher, "form_stopped")
        events: List[EventType] = [SlotSet(slot, None) for slot in TASK_SLOTS]
        if not is_verified(tracker):
            events += [SlotSet("order_id", None), SlotSet("order_email", None)]
        return events


class AskAction(ShopAction):
    """Asks for one form slot with the catalogue's `ask_<slot>` message (and its buttons)."""

    @property
    @abstractmethod
    def slot(self) -> str:
        """The slot this action asks for; subclasses set it as a class attribute."""

    def name(self) -> str:
        return f"action_ask_{self.slot}"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        say(dispatcher, f"ask_{self.slot}")
        return []


class ActionAskOrderId(AskAction):
    slot = "order_id"


class ActionAskOrderEmail(AskAction):
    slot = "order_email"


class ActionAskReturnReason(AskAction):
    slot = "return_reason"


class ActionAskRefundMethod(AskAction):
    slot = "refund_method"
