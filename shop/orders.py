"""Finding and verifying orders. Nothing about an order leaves this module before verification."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shop.cancellations import cancel_refusal
from shop.models import Order, Return
from shop.order_numbers import OrderNumberFormat, compact
from shop.returns import last_return_day, refusal_rule
from shop.settings import PROJECT_ROOT, ReturnPolicy, get_settings

# An order number: one token of letters, digits and dashes with at least one digit (not a word).
ORDER_ID_PATTERN = re.compile(r"^(?=[A-Z-]*\d)[A-Z0-9][A-Z0-9-]{2,39}$")
RETURN_ID_PATTERN = re.compile(r"^R-?(\d{1,9})$")
RETURN_ID_IN_TEXT = re.compile(r"(?<![A-Za-z0-9-])R-?(\d{1,9})(?![A-Za-z0-9-])", re.IGNORECASE)
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ORDER_FACT_QUESTIONS = PROJECT_ROOT / "data" / "knowledge" / "order_facts.yml"
# What an order fact says of an item that refusal_rule will not take back, by the rule.
NOT_RETURNABLE = {"already_returned": "{item} has already been returned.",
                  "final_sale": "{item} was bought as final sale and cannot be returned."}
TODAY = "today"  # the kind of the fact given with every question about an order, whatever it asks


def normalise_reference(text: Optional[str], numbers: Optional[OrderNumberFormat] = None) -> Optional[str]:
    """The one order number (in the shop's format, shop.yml `order_numbers`) or return id in `text`:
    '#10001', 'order no. 10001', 'nw 2024 00017', 'r-12' -> '10001', '10001', 'NW-2024-00017', 'R-12'.
    None when the text holds none, or more than one (the customer is asked again rather than guessed for)."""
    if not text:
        return None
    text = str(text)
    returns = {f"R-{int(match.group(1))}" for match in RETURN_ID_IN_TEXT.finditer(text)}
    numbers = numbers or get_settings().order_numbers
    orders = {numbers.canonical(match.group(0)) for match in numbers.find(text)}
    found = returns | orders
    return found.pop() if len(found) == 1 else None


def normalise_email(text: Optional[str]) -> Optional[str]:
    if not text:
        return None
    cleaned = str(text).strip().strip("<>.,;").lower()
    return cleaned if EMAIL_PATTERN.match(cleaned) and len(cleaned) <= 254 else None


def find_order(session: Session, reference: str) -> Optional[Order]:
    """An order by its number (as stored, or as typed without its separators), or the order a return id
    belongs to."""
    match = RETURN_ID_PATTERN.match(reference)
    if match:
        ret = session.get(Return, int(match.group(1)))
        return ret.line.order if ret else None
    order = session.get(Order, reference)
    if order is not None:
        return order
    stored_compact = func.upper(func.replace(func.replace(Order.id, "-", ""), " ", ""))
    matches = session.scalars(select(Order).where(stored_compact == compact(reference)).limit(2)).all()
    return matches[0] if len(matches) == 1 else None


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


def spoken_day(value: Optional[datetime | date]) -> str:
    """A day as a customer says it, weekday included, so "before the weekend?" can be answered by copying it."""
    return f"{value:%A} {value.day} {value:%B %Y}" if value else "-"


def today_fact(today: date) -> str:
    """The first of an order's facts, and the one given with every question about it ("will it come before the
    weekend?" needs today's date as much as the delivery date)."""
    return f"Today is {spoken_day(today)}."


def keyed_order_facts(order: Order, today: date, returns: Optional[ReturnPolicy] = None) -> List[Tuple[str, str]]:
    """What the generator may say about a verified order, as (kind, sentence): one short sentence per fact, each
    copyable into a reply. The kinds name the questions each fact answers (data/knowledge/order_facts.yml).
    Derived facts (whether it has shipped, so whether it can still be cancelled or returned, and until when) are
    stated outright: a small model copies a fact far more reliably than it reasons from a status, a date and a rule.
    `returns`: the shop's return rules (shop.yml), by default the configured ones."""
    number = order.id
    facts = [(TODAY, today_fact(today)),
             ("items", f"Order {number} contains {describe_items(order)}."),
             ("placed", f"Order {number} was placed on {spoken_day(order.ordered_at)}.")]
    if order.status == "cancelled":
        when = f" on {spoken_day(order.cancelled_at)}" if order.cancelled_at else ""
        facts.append(("cancelled", f"Order {number} was cancelled{when}."))
    elif order.shipped_at is None and order.status not in ("shipped", "delivered"):
        facts.append(("not_shipped", f"Order {number} has not shipped yet, so it has no tracking number yet."))
    else:
        carrier = f" with {order.carrier}" if order.carrier else ""
        facts.append(("shipped", f"Order {number} has already shipped: it left our warehouse on "
                                 f"{spoken_day(order.shipped_at)}{carrier}."))
        if order.tracking_number:
            facts.append(("tracking", f"The tracking number of order {number} is {order.tracking_number}."))
        if order.status == "delivered" and order.delivered_at:
            facts.append(("delivered", f"Order {number} was delivered on {spoken_day(order.delivered_at)}."))
        elif order.estimated_delivery:
            facts.append(("expected", f"Order {number} is expected to arrive on "
                                      f"{spoken_day(order.estimated_delivery)}."))
    return facts + return_facts(order, today, returns or get_settings().returns)


def return_facts(order: Order, today: date, policy: ReturnPolicy) -> List[Tuple[str, str]]:
    """Whether the order can still be cancelled or returned, and until when, decided by the cancel and return
    skills' own rules (cancel_refusal, refusal_rule): "can I still send it back?" is answered by the delivery date
    and the return window together, which a small model gets wrong when it has to add them up itself."""
    number = order.id
    cancel_rule = cancel_refusal(order)
    if cancel_rule == "already_cancelled":
        return []
    if cancel_rule is None:
        return [("cancellable", f"Order {number} has not shipped yet, so it can still be cancelled.")]
    now = datetime.combine(today, datetime.min.time())
    rules = [refusal_rule(line, policy, now) for line in order.lines]
    facts = [("not_returnable", NOT_RETURNABLE[rule].format(item=line.item_name))
             for line, rule in zip(order.lines, rules, strict=True) if rule in NOT_RETURNABLE]
    if len(facts) == len(order.lines):
        return facts
    last_day = last_return_day(order, policy)
    if order.status != "delivered" or last_day is None:
        window = f"Order {number} can be returned within {policy.window_days} days of delivery."
    elif "outside_window" in rules:
        window = (f"The return window of order {number} closed on {spoken_day(last_day)}, so it can no longer be "
                  "returned.")
    else:
        window = f"Order {number} can be returned until {spoken_day(last_day)}."
    return [*facts, ("return_window", window)]


def order_facts(order: Order, today: date) -> List[str]:
    """The sentences of keyed_order_facts, today's date first."""
    return [text for _, text in keyed_order_facts(order, today)]


@lru_cache(maxsize=1)
def order_fact_questions() -> Dict[str, Tuple[str, ...]]:
    """Per kind of order fact, the questions it answers (data/knowledge/order_facts.yml)."""
    raw = yaml.safe_load(ORDER_FACT_QUESTIONS.read_text(encoding="utf-8")) or {}
    return {str(kind): tuple(str(question) for question in questions or ())
            for kind, questions in (raw.get("kinds") or {}).items()}


def returns_of(order: Order) -> List[Return]:
    return [ret for line in order.lines for ret in line.returns]
