"""Cancelling an order that has not shipped. The status is re-checked under a row lock at write time,
so an order that ships between the question and the customer's "yes" is not cancelled."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from shop.models import Order, OutboxEmail, Refund

# Every rule cancel_refusal can name; each has a message "cancel_refused_<rule>" in actions/responses.yml.
CANCEL_RULES = ("already_cancelled", "already_shipped")


class CancelRefused(Exception):
    def __init__(self, rule: str):
        super().__init__(rule)
        self.rule = rule


def cancel_refusal(order: Order) -> Optional[str]:
    """Why the order cannot be cancelled ('already_shipped', 'already_cancelled'), or None."""
    if order.status == "cancelled":
        return "already_cancelled"
    if order.status in ("shipped", "delivered"):
        return "already_shipped"
    return None


def cancel_order(session: Session, order_id: str, now: Optional[datetime] = None) -> Order:
    order = session.execute(select(Order).where(Order.id == order_id).with_for_update()).scalar_one()
    rule = cancel_refusal(order)
    if rule:
        raise CancelRefused(rule)
    order.status = "cancelled"
    order.cancelled_at = now or datetime.utcnow()
    session.add(Refund(order=order, amount=order.total, method="original_payment", status="processing"))
    session.add(
        OutboxEmail(
            to_address=order.customer.email,
            subject=f"Order {order.id} cancelled",
            body=(
                f"Hello {order.customer.name},\n\nyour order {order.id} has been cancelled as you asked. "
                f"We are refunding {order.total:.2f} to your original payment method.\n"
            ),
        )
    )
    session.flush()
    return order
