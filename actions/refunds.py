"""Skill: where is my refund (by order number or return id)."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.base import ShopAction, not_verified, verified_order
from actions.messages import MESSAGE_NAME, say
from actions.verification import VerifiedOrderForm
from shop.db import session_scope
from shop.refunds import describe_refunds
from shop.settings import get_settings


class ValidateRefundForm(VerifiedOrderForm):
    def name(self) -> str:
        return "validate_refund_form"


class ActionRefundStatus(ShopAction):
    def name(self) -> str:
        return "action_refund_status"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        with session_scope() as session:
            order = verified_order(session, tracker)
            if order is None:
                return not_verified(dispatcher, tracker)
            sentences = describe_refunds(order, get_settings().returns.refund_methods)
            if not sentences:
                say(dispatcher, "no_refunds", order_id=order.id)
            for sentence in sentences:
                dispatcher.utter_message(text=sentence, **{MESSAGE_NAME: "refund_status"})
        return []
