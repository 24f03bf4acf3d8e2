"""Finding everything the shop holds about one customer, by email, across the three databases.

What belongs to a customer:
- the customer record with that email (any letter case), its orders with their items, refunds and returns, and the
  emails the shop queued to that address;
- every conversation that mentioned the email anywhere in its events (messages, slots, metadata), whose id is the
  email, or that verified one of the customer's orders (slot `verified_order_id`), in the tracker store and in the
  event stream (whose copies have the email masked, so there the conversation id and the verified order count; a
  conversation id that is itself personal data, an email, is stored there as its pseudonym, shop.pii.pseudonym);
- the handoff tickets, satisfaction answers and per-message sentiment of those conversations, and any ticket or
  answer that mentions the email.

Why whole conversations: a conversation is one person's session with the bot; its other messages (a name, an
address, a complaint) are as personal as the one with the email.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Dict, List, Optional, Set

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shop.db import session_scope
from shop.models import (
    ConversationSentiment,
    Customer,
    HandoffTicket,
    OutboxEmail,
    SatisfactionFeedback,
)
from shop.pii import pseudonym
from shop.privacy.matching import EmailMatcher, contains_any, parse_event, verifies_one_of
from shop.privacy.stores import STREAM_EVENTS, TRACKER_EVENTS, Database, Databases, chunks

ERASED = "[erased]"
ERASED_DOMAIN = "erased.invalid"  # .invalid never resolves (RFC 2606): an anonymised address can never be mailed


def anonymised_email(customer_id: int) -> str:
    """Unique (customers.email is unique) and recognisably not a person's address."""
    return f"customer-{customer_id}@{ERASED_DOMAIN}"


def plain(value: Any) -> Any:
    """A column value as JSON can hold it, readable: dates as ISO text, money as '12.50'."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return value


def event_time(timestamp: Optional[float]) -> Optional[str]:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).replace(tzinfo=None).isoformat(timespec="seconds")


@dataclass
class Conversation:
    """One conversation of the customer: why it is theirs, and its events in each store."""

    sender_id: str
    reasons: Set[str] = field(default_factory=set)
    tracker_events: List[Dict[str, Any]] = field(default_factory=list)
    stream_events: List[Dict[str, Any]] = field(default_factory=list)
    stream_sender_ids: Set[str] = field(default_factory=set)  # its id in the event stream: itself or its pseudonym


@dataclass
class CustomerData:
    """Everything found for one email; rows as plain dicts (the export), ids for erasure."""

    email: str
    customers: List[Dict[str, Any]] = field(default_factory=list)  # one, or several whose emails differ in case
    orders: List[Dict[str, Any]] = field(default_factory=list)
    returns: List[Dict[str, Any]] = field(default_factory=list)
    emails: List[Dict[str, Any]] = field(default_factory=list)
    handoff_tickets: List[Dict[str, Any]] = field(default_factory=list)
    satisfaction_feedback: List[Dict[str, Any]] = field(default_factory=list)
    sentiment: List[Dict[str, Any]] = field(default_factory=list)
    conversations: Dict[str, Conversation] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    @property
    def order_ids(self) -> Set[str]:
        return {str(order["order_id"]).upper() for order in self.orders}

    @property
    def tracker_event_count(self) -> int:
        return sum(len(conversation.tracker_events) for conversation in self.conversations.values())

    @property
    def stream_event_count(self) -> int:
        return sum(len(conversation.stream_events) for conversation in self.conversations.values())

    @property
    def found_anything(self) -> bool:
        return bool(self.customers or self.emails or self.handoff_tickets or self.satisfaction_feedback
                    or self.sentiment or self.conversations)

    def conversation(self, sender_id: str, reason: str) -> Conversation:
        found = self.conversations.setdefault(sender_id, Conversation(sender_id))
        found.reasons.add(reason)
        return found


def find_customer_data(databases: Databases, email: str) -> CustomerData:
    """Everything of the customer with `email` (already validated and lower case)."""
    matcher = EmailMatcher(email)
    found = CustomerData(email=matcher.email, notes=list(databases.notes))
    shop = databases.shop
    with session_scope(shop.engine) as session:
        _customer_and_orders(session, shop, matcher, found)
    for database, table, where in ((databases.tracker, TRACKER_EVENTS, "tracker store"),
                                   (databases.events, STREAM_EVENTS, "event stream")):
        if database is not None:
            _matching_conversations(database, table, where, matcher, found)
    _merge_pseudonyms(found)
    with session_scope(shop.engine) as session:
        _conversation_rows(session, shop, matcher, found)
        if shop.has_table(OutboxEmail.__tablename__):
            query = select(OutboxEmail).where((func.lower(OutboxEmail.to_address) == matcher.email)
                                              | contains_any(OutboxEmail.body, matcher.needles))
            found.emails = [_outbox_row(mail) for mail in session.scalars(query.order_by(OutboxEmail.id))
                            if matcher.is_email(mail.to_address) or matcher.in_text(mail.body)]
    if databases.tracker is not None:
        _load_events(databases.tracker, TRACKER_EVENTS, found, "tracker_events")
    if databases.events is not None:
        _load_events(databases.events, STREAM_EVENTS, found, "stream_events")
    return found


def _customer_and_orders(session: Session, shop: Database, matcher: EmailMatcher, found: CustomerData) -> None:
    if not shop.has_table(Customer.__tablename__):
        found.notes.append("the shop database has no customers table")
        return
    customers = session.scalars(select(Customer).where(func.lower(Customer.email) == matcher.email)
                                .order_by(Customer.id)).all()
    found.customers = [{"customer_id": customer.id, "name": customer.name, "email": customer.email}
                       for customer in customers]
    orders = [order for customer in customers for order in customer.orders]
    for order in sorted(orders, key=lambda order: (order.ordered_at, order.id)):
        returns = []
        for line in order.lines:
            for ret in line.returns:
                row = {"return_id": ret.public_id, "order_id": order.id, "item": line.item_name,
                       "reason": ret.reason, "refund_method": ret.refund_method, "status": ret.status,
                       "created_at": plain(ret.created_at), "_id": ret.id}
                returns.append(row)
                found.returns.append(row)
        found.orders.append({
            "order_id": order.id, "status": order.status, "ordered_at": plain(order.ordered_at),
            "shipped_at": plain(order.shipped_at), "delivered_at": plain(order.delivered_at),
            "estimated_delivery": plain(order.estimated_delivery), "cancelled_at": plain(order.cancelled_at),
            "carrier": order.carrier, "tracking_number": order.tracking_number, "total": plain(order.total),
            "items": [{"sku": line.sku, "item": line.item_name, "quantity": line.quantity,
                       "unit_price": plain(line.unit_price), "final_sale": line.final_sale} for line in order.lines],
            "refunds": [{"refund_id": refund.id, "return_id": refund.return_ and refund.return_.public_id,
                         "amount": plain(refund.amount), "method": refund.method, "status": refund.status,
                         "created_at": plain(refund.created_at), "issued_at": plain(refund.issued_at)}
                        for refund in order.refunds],
            "returns": [{key: value for key, value in row.items() if key != "_id"} for row in returns],
        })


def _matching_conversations(database: Database, table_name: str, where: str, matcher: EmailMatcher,
                            found: CustomerData) -> None:
    """Conversation ids whose events mention the email, are the email, or verified one of the customer's orders."""
    table = database.table(table_name)
    if table is None:
        found.notes.append(f"the {database.label} has no {table_name} table yet")
        return
    with database.engine.connect() as connection:
        query = select(table.c.sender_id, table.c.data).where(
            contains_any(table.c.data, matcher.needles) | contains_any(table.c.sender_id, matcher.needles))
        for sender_id, data in connection.execute(query):
            if matcher.in_text(sender_id):
                found.conversation(sender_id, "its conversation id is the email address")
            if matcher.in_value(parse_event(data)):
                found.conversation(sender_id, f"mentions the email ({where})")
        if table_name == STREAM_EVENTS:  # the consumer stores an email as conversation id as its pseudonym
            query = select(table.c.sender_id).where(table.c.sender_id == pseudonym(matcher.email)).limit(1)
            if connection.execute(query).first() is not None:
                found.conversation(matcher.email, "its conversation id is the email address")
        order_ids = sorted(found.order_ids)
        for batch in chunks(order_ids, 100):
            query = select(table.c.sender_id, table.c.data).where(
                table.c.type_name == "slot", contains_any(table.c.data, ["verified_order_id"]),
                contains_any(table.c.data, batch))
            for sender_id, data in connection.execute(query):
                order = verifies_one_of(parse_event(data), set(batch))
                if order is not None:
                    found.conversation(sender_id, f"verified order {order} ({where})")


def _merge_pseudonyms(found: CustomerData) -> None:
    """A conversation found in the event stream under the pseudonym of a conversation found elsewhere is one."""
    by_pseudonym = {pseudonym(sender_id): sender_id for sender_id in found.conversations}
    for sender_id in list(found.conversations):
        original = by_pseudonym.get(sender_id)
        if original is not None and original != sender_id:
            found.conversations[original].reasons |= found.conversations.pop(sender_id).reasons


def _conversation_rows(session: Session, shop: Database, matcher: EmailMatcher, found: CustomerData) -> None:
    """Tickets and answers that mention the email make their conversation the customer's; then every ticket,
    answer and sentiment row of the customer's conversations."""
    texts = ((HandoffTicket, HandoffTicket.transcript, "a handoff ticket's transcript mentions the email"),
             (SatisfactionFeedback, SatisfactionFeedback.answer, "a satisfaction answer mentions the email"))
    for model, column, reason in texts:
        if shop.has_table(model.__tablename__):
            for row in session.scalars(select(model).where(contains_any(column, matcher.needles))):
                if matcher.in_text(getattr(row, column.key)):
                    found.conversation(row.conversation_id, reason)
    senders = sorted(found.conversations)
    for model in (HandoffTicket, SatisfactionFeedback, ConversationSentiment):
        if not shop.has_table(model.__tablename__):
            continue
        rows = []
        for batch in chunks(senders):
            rows.extend(session.scalars(select(model).where(model.conversation_id.in_(batch))))
        rows.sort(key=lambda row: row.id)
        if model is HandoffTicket:
            found.handoff_tickets = [{"ticket_id": row.public_id, "conversation_id": row.conversation_id,
                                      "reason": row.reason, "status": row.status,
                                      "created_at": plain(row.created_at), "transcript": row.transcript.splitlines(),
                                      "_id": row.id} for row in rows]
        elif model is SatisfactionFeedback:
            found.satisfaction_feedback = [{"conversation_id": row.conversation_id, "rating": row.rating,
                                            "answer": row.answer, "answer_sentiment": row.answer_sentiment,
                                            "created_at": plain(row.created_at), "_id": row.id} for row in rows]
        else:
            found.sentiment = [{"conversation_id": row.conversation_id, "turn": row.turn, "label": row.label,
                                "confidence": row.confidence, "intent": row.intent,
                                "recorded_at": plain(row.recorded_at), "_id": row.id} for row in rows]


def _outbox_row(mail: OutboxEmail) -> Dict[str, Any]:
    return {"to": mail.to_address, "subject": mail.subject, "body": mail.body.splitlines(),
            "created_at": plain(mail.created_at), "sent_at": plain(mail.sent_at), "_id": mail.id}


def _load_events(database: Database, table_name: str, found: CustomerData, attribute: str) -> None:
    """All events of the customer's conversations, in the order they were stored; in the event stream also under
    each conversation id's pseudonym."""
    table = database.table(table_name)
    if table is None or not found.conversations:
        return
    owners = {sender_id: sender_id for sender_id in found.conversations}
    if attribute == "stream_events":
        owners.update({pseudonym(sender_id): sender_id for sender_id in found.conversations})
    with database.engine.connect() as connection:
        for batch in chunks(sorted(owners)):
            query = (select(table.c.id, table.c.sender_id, table.c.timestamp, table.c.data)
                     .where(table.c.sender_id.in_(batch)).order_by(table.c.id))
            for row_id, sender_id, timestamp, data in connection.execute(query):
                conversation = found.conversations[owners[sender_id]]
                getattr(conversation, attribute).append({"time": event_time(timestamp), "event": parse_event(data),
                                                         "_id": row_id})
                if attribute == "stream_events":
                    conversation.stream_sender_ids.add(sender_id)
