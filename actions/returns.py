"""Skill: return an item. The rules are shop.returns' (configured in shop.yml); this module only talks."""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.base import ShopAction, not_verified, verified_order
from actions.messages import checked, say
from actions.verification import VerifiedOrderForm
from shop.db import session_scope
from shop.models import Order, OrderLine
from shop.orders import format_day
from shop.returns import ReturnRefused, create_return, match_line, refusal_rule, returnable_lines
from shop.settings import get_settings

RETURN_SLOTS = ("return_item", "return_reason", "refund_method")
STORE_CREDIT_WORDS = re.compile(r"credit|voucher|gift ?card|coupon")
ORIGINAL_PAYMENT_WORDS = re.compile(r"original|card|paypal|bank|account|money back|same way|refund")


def say_refusal(dispatcher: CollectingDispatcher, line: OrderLine, rule: str) -> None:
    order = line.order
    say(
        dispatcher,
        f"return_refused_{rule}",
        item=line.item_name,
        order_id=order.id,
        window_days=get_settings().returns.window_days,
        delivered_on=format_day(order.delivered_at),
    )


def parse_refund_method(text: Any) -> Optional[str]:
    """'store_credit', 'original_payment', or None; accepts button payloads and free text."""
    methods = get_settings().returns.refund_methods
    value = str(text or "").strip().lower()
    if value in methods:
        return value
    if STORE_CREDIT_WORDS.search(value) and "store_credit" in methods:
        return "store_credit"
    if ORIGINAL_PAYMENT_WORDS.search(value) and "original_payment" in methods:
        return "original_payment"
    return None


class ValidateReturnForm(VerifiedOrderForm):
    def name(self) -> str:
        return "validate_return_form"

    def after_verification(self, session: Session, order: Order, domain_slots: List[str]) -> List[str]:
        return domain_slots if returnable_lines(order, get_settings().returns) else []

    def on_verified(self, order: Order) -> List[EventType]:
        # Nothing to choose when the order has a single item.
        return [SlotSet("return_item", order.lines[0].sku)] if len(order.lines) == 1 else []

    def validate_return_item(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        with session_scope() as session:
            order = verified_order(session, tracker)
            line = match_line(order, value) if order else None
            if line is None:
                say(dispatcher, "unknown_item")
                return {"return_item": None}
            rule = refusal_rule(line, get_settings().returns)
            if rule:
                say_refusal(dispatcher, line, rule)
                return {"return_item": None}
            return {"return_item": line.sku}

    def validate_return_reason(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        reason = " ".join(str(value or "").split())[:200]
        return checked(dispatcher, "return_reason", reason if sum(ch.isalpha() for ch in reason) >= 2 else None,
                       complaint="invalid_reason")

    def validate_refund_method(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        return checked(dispatcher, "refund_method", parse_refund_method(value), complaint="invalid_refund_method")


class ActionAskReturnItem(ShopAction):
    """Asks which item, with one button per item that can still be returned."""

    def name(self) -> str:
        return "action_ask_return_item"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        with session_scope() as session:
            order = verified_order(session, tracker)
            lines = returnable_lines(order, get_settings().returns) if order else []
            buttons = [
                {"title": line.item_name, "payload": "/inform" + json.dumps({"return_item": line.sku})}
                for line in lines
            ]
        say(dispatcher, "ask_which_item", buttons=buttons)
        return []


class ActionSubmitReturn(ShopAction):
    def name(self) -> str:
        return "action_submit_return"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        reset = [SlotSet(slot, None) for slot in RETURN_SLOTS] + [SlotSet("pending_offer", None)]
        policy = get_settings().returns
        with session_scope() as session:
            order = verified_order(session, tracker)
            if order is None:
                return not_verified(dispatcher, tracker) + reset
            sku = tracker.get_slot("return_item")
            line = next((line for line in order.lines if line.sku == sku), None)
            if line is None:
                # The form ended early because nothing on this order can be returned: say why, per item.
                refusals = [(each, refusal_rule(each, policy)) for each in order.lines]
                for each, rule in refusals:
                    if rule:
                        say_refusal(dispatcher, each, rule)
                if not any(rule for _, rule in refusals):
                    say(dispatcher, "unknown_item")
                return reset
            try:
                created = create_return(
                    session, line, tracker.get_slot("return_reason") or "not given",
                    tracker.get_slot("refund_method") or "original_payment", policy,
                )
            except ReturnRefused as refused:
                say_refusal(dispatcher, refused.line, refused.rule)
                return reset
        say(
            dispatcher,
            "return_created",
            return_id=created.return_id,
            item=created.item_name,
            amount=created.amount,
            refund_method=created.refund_method,
            email=created.email,
        )
        return reset
