"""Return rules and the creation of a return. The rules come from shop.yml (ReturnPolicy)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import List, Optional

from sqlalchemy.orm import Session

from shop.models import Order, OrderLine, OutboxEmail, Refund, Return
from shop.settings import ReturnPolicy

# Every rule refusal_rule can name; each has a message "return_refused_<rule>" in actions/responses.yml.
REFUSAL_RULES = ("order_cancelled", "already_returned", "final_sale", "not_delivered", "outside_window")


class ReturnRefused(Exception):
    """A return that a rule forbids; `rule` names the rule so the customer can be told which."""

    def __init__(self, rule: str, line: OrderLine):
        super().__init__(rule)
        self.rule = rule
        self.line = line


def refusal_rule(line: OrderLine, policy: ReturnPolicy, now: Optional[datetime] = None) -> Optional[str]:
    """The first rule that forbids returning this line, or None when it can be returned."""
    now = now or datetime.utcnow()
    order = line.order
    if order.status == "cancelled":
        return "order_cancelled"
    if any(ret.status != "cancelled" for ret in line.returns):
        return "already_returned"
    if line.final_sale and not policy.allow_final_sale:
        return "final_sale"
    if policy.require_delivered and order.status != "delivered":
        return "not_delivered"
    if order.delivered_at and now.date() > last_return_day(order, policy):
        return "outside_window"
    return None


def last_return_day(order: Order, policy: ReturnPolicy) -> Optional[date]:
    """The last day a delivered order can be returned (the whole day: what the customer is told is what holds);
    None before it is delivered."""
    return (order.delivered_at + timedelta(days=policy.window_days)).date() if order.delivered_at else None


def returnable_lines(order: Order, policy: ReturnPolicy, now: Optional[datetime] = None) -> List[OrderLine]:
    return [line for line in order.lines if refusal_rule(line, policy, now) is None]


def match_line(order: Order, choice: Optional[str]) -> Optional[OrderLine]:
    """The line a customer means by a SKU, a name, part of a name, or its position ('2', 'the second')."""
    if not choice:
        return None
    text = str(choice).strip().lower()
    ordinals = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
    for word in text.replace("the ", "").split():
        position = ordinals.get(word) or (int(word) if word.isdigit() else None)
        if position and 1 <= position <= len(order.lines):
            return order.lines[position - 1]
    for line in order.lines:
        if text in (line.sku.lower(), line.item_name.lower()):
            return line
    words = {w for w in text.replace(",", " ").split() if len(w) > 2}
    scored = [(len(words & set(line.item_name.lower().replace(",", " ").split())), line) for line in order.lines]
    best = max(scored, key=lambda pair: pair[0], default=(0, None))
    ties = [line for score, line in scored if score == best[0]]
    return best[1] if best[0] > 0 and len(ties) == 1 else None


@dataclass(frozen=True)
class CreatedReturn:
    return_id: str
    item_name: str
    amount: str
    refund_method: str
    email: str


def create_return(
    session: Session,
    line: OrderLine,
    reason: str,
    refund_method: str,
    policy: ReturnPolicy,
    now: Optional[datetime] = None,
) -> CreatedReturn:
    """Record the return, its pending refund and the confirmation email in one transaction."""
    rule = refusal_rule(line, policy, now)
    if rule:
        raise ReturnRefused(rule, line)
    if refund_method not in policy.refund_methods:
        raise ValueError(f"unknown refund method {refund_method!r}")
    amount = line.unit_price * line.quantity
    ret = Return(line=line, reason=reason[:200], refund_method=refund_method, status="requested")
    session.add(ret)
    session.add(Refund(order=line.order, return_=ret, amount=amount, method=refund_method, status="waiting_for_item"))
    session.flush()
    email = line.order.customer.email
    method_label = policy.refund_methods[refund_method]
    session.add(
        OutboxEmail(
            to_address=email,
            subject=f"Your return {ret.public_id} for order {line.order.id}",
            body=(
                f"Hello {line.order.customer.name},\n\nwe have registered return {ret.public_id} for "
                f"{line.quantity} x {line.item_name} from order {line.order.id} (reason: {ret.reason}).\n"
                "Please put the return id in the parcel. Once the item arrives we refund "
                f"{amount:.2f} to {method_label}.\n"
            ),
        )
    )
    return CreatedReturn(ret.public_id, line.item_name, f"{amount:.2f}", method_label, email)
