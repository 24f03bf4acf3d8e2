"""Skill: cancel an order that has not shipped, only after an explicit yes."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.base import ShopAction, not_verified, verified_order
from actions.messages import say
from actions.verification import VerifiedOrderForm
from shop.cancellations import CancelRefused, cancel_order, cancel_refusal
from shop.db import session_scope
from shop.models import Order
from shop.orders import describe_items, format_day


def say_cancel_refusal(dispatcher: CollectingDispatcher, order: Order, rule: str) -> List[EventType]:
    say(
        dispatcher,
        f"cancel_refused_{rule}",
        order_id=order.id,
        shipped_on=format_day(order.shipped_at),
        cancelled_on=format_day(order.cancelled_at),
    )
    return [SlotSet("pending_offer", "return")] if rule == "already_shipped" else []


class ValidateCancelForm(VerifiedOrderForm):
    def name(self) -> str:
        return "validate_cancel_form"

    def after_verification(self, session: Session, order: Order, domain_slots: List[str]) -> List[str]:
        # Don't ask "are you sure?" about an order that cannot be cancelled anyway.
        return [] if cancel_refusal(order) else domain_slots


class ActionAskCancelConfirmed(ShopAction):
    def name(self) -> str:
        return "action_ask_cancel_confirmed"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        with session_scope() as session:
            order = verified_order(session, tracker)
            if order is None:
                return not_verified(dispatcher, tracker)
            say(
                dispatcher,
                "ask_cancel_confirmed",
                order_id=order.id,
                items=describe_items(order),
                total=f"{order.total:.2f}",
            )
        return []


class ActionSubmitCancel(ShopAction):
    def name(self) -> str:
        return "action_submit_cancel"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        events: List[EventType] = [SlotSet("cancel_confirmed", None), SlotSet("pending_offer", None)]
        with session_scope() as session:
            order = verified_order(session, tracker)
            if order is None:
                return events + not_verified(dispatcher, tracker)
            rule = cancel_refusal(order)
            if rule:
                return events + say_cancel_refusal(dispatcher, order, rule)
            if tracker.get_slot("cancel_confirmed") is not True:
                say(dispatcher, "cancel_kept", order_id=order.id)
                return events
            try:
                cancel_order(session, order.id)
            except CancelRefused as refused:
                return events + say_cancel_refusal(dispatcher, order, refused.rule)
            say(dispatcher, "order_cancelled", order_id=order.id, total=f"{order.total:.2f}")
        return events
