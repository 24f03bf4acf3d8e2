"""Finding and verifying orders. Nothing about an order leaves this module before verification."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import List, Optional

from sqlalchemy.orm import Session

from shop.models import Order, Return

# An order number: one token of letters, digits and dashes with at least one digit (not a word).
ORDER_ID_PATTERN = re.compile(r"^(?=[A-Z-]*\d)[A-Z0-9][A-Z0-9-]{2,39}$")
RETURN_ID_PATTERN = re.compile(r"^R-?(\d{1,9})$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_reference(text: Optional[str]) -> Optional[str]:
    """'#10001', 'order 10001', 'r-12' -> '10001', 'R-12'; None when it cannot be a reference."""
    if not text:
        return None
    cleaned = re.sub(r"(?i)^\s*(order|return)?\s*(number|no\.?|id)?\s*[:#]?\s*", "", str(text)).strip().upper()
    match = RETURN_ID_PATTERN.match(cleaned)
    if match:
        return f"R-{int(match.group(1))}"
    return cleaned if ORDER_ID_PATTERN.match(cleaned) else None


def normalise_email(text: Optional[str]) -> Optional[str]:
    if not text:
        return None
    cleaned = str(text).strip().strip("<>.,;").lower()
    return cleaned if EMAIL_PATTERN.match(cleaned) and len(cleaned) <= 254 else None


def find_order(session: Session, reference: str) -> Optional[Order]:
    """An order by its number, or the order a return id belongs to."""
    match = RETURN_ID_PATTERN.match(reference)
    if match:
        ret = session.get(Return, int(match.group(1)))
        return ret.line.order if ret else None
    return session.get(Order, reference)


def verify_order(session: Session, reference: Optional[str], email: Optional[str]) -> Optional[Order]:
    """The order only when reference and email belong together; None for any mismatch or unknown order,
    so a caller cannot tell a wrong email from a wrong number."""
    reference, email = normalise_reference(reference), normalise_email(email)
    if not reference or not email:
        return None
    order = find_order(session, reference)
    if order is None or order.customer.email.lower() != email:
        return None
    return order


@dataclass(frozen=True)
class OrderView:
    """What a verified customer is told about an order, ready for a response template."""

    order_id: str
    status: str
    items: str
    carrier: str
    tracking_number: str
    ordered_on: str
    shipped_on: str
    delivery: str

    def as_kwargs(self) -> dict:
        return self.__dict__.copy()


def format_day(value: Optional[datetime | date]) -> str:
    return value.strftime("%d %b %Y") if value else "-"


def describe_items(order: Order) -> str:
    return "; ".join(f"{line.quantity} x {line.item_name}" for line in order.lines)


def view_order(order: Order) -> OrderView:
    if order.status == "delivered":
        delivery = f"delivered on {format_day(order.delivered_at)}"
    elif order.status == "shipped":
        estimate = order.estimated_delivery
        delivery = f"estimated delivery {format_day(estimate)}" if estimate else "in transit"
    elif order.status == "cancelled":
        delivery = f"cancelled on {format_day(order.cancelled_at)}" if order.cancelled_at else "cancelled"
    else:
        delivery = "not shipped yet"
    return OrderView(
        order_id=order.id,
        status=order.status,
        items=describe_items(order),
        carrier=order.carrier or "not assigned yet",
        tracking_number=order.tracking_number or "not assigned yet",
        ordered_on=format_day(order.ordered_at),
        shipped_on=format_day(order.shipped_at),
        delivery=delivery,
    )


def returns_of(order: Order) -> List[Return]:
    return [ret for line in order.lines for ret in line.returns]
