"""Skill: where is my order."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.base import ShopAction, not_verified, verified_order
from actions.messages import say
from actions.verification import VerifiedOrderForm
from shop.db import session_scope
from shop.orders import view_order


class ValidateOrderStatusForm(VerifiedOrderForm):
    def name(self) -> str:
        return "validate_order_status_form"


class ActionOrderStatus(ShopAction):
    def name(self) -> str:
        return "action_order_status"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        with session_scope() as session:
            order = verified_order(session, tracker)
            if order is None:
                return not_verified(dispatcher, tracker)
            say(dispatcher, "order_status", **view_order(order).as_kwargs())
        return []
