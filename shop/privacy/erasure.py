"""Erasing one customer's personal data on request.

What happens to each kind of data (docs/privacy.md):
- conversations (the tracker store's events and the event stream's copies), handoff tickets, satisfaction answers,
  sentiment rows and emails to the address are deleted;
- orders, their items, refunds and returns stay: they are the shop's records (accounts, stock, refunds still owed);
  the name and email behind them, and return reasons the customer wrote in their own words, are anonymised or kept
  as shop.yml `privacy.order_contact_data` says.

Why this order: rows linked by conversation go first and the customer record is anonymised last, so that when a
database fails half way, running the command again still finds the rest through the email and the orders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence

from sqlalchemy import delete, update

from shop.db import session_scope
from shop.models import ConversationSentiment, Customer, HandoffTicket, OutboxEmail, Return, SatisfactionFeedback
from shop.privacy.customer import ERASED, CustomerData, anonymised_email
from shop.privacy.stores import STREAM_EVENTS, TRACKER_EVENTS, Database, Databases, chunks
from shop.settings import PrivacyPolicy


@dataclass(frozen=True)
class Change:
    """One line of the report: how many of what, and what is (or would be) done to them."""

    what: str
    count: int
    action: str  # "delete", "anonymise" or "keep"
    detail: str = ""


@dataclass
class ErasurePlan:
    email: str
    changes: List[Change] = field(default_factory=list)
    tracker_senders: List[str] = field(default_factory=list)
    stream_senders: List[str] = field(default_factory=list)
    ids: Dict[str, List[int]] = field(default_factory=dict)
    customer_ids: List[int] = field(default_factory=list)
    free_text_returns: List[int] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        return not any(change.count for change in self.changes if change.action != "keep")


def free_text_reason(reason: str, configured: Sequence[str]) -> bool:
    """A reason the customer wrote themselves (not one of shop.yml `returns.reasons`, not already erased)."""
    normalised = " ".join(reason.split()).lower()
    return normalised not in {" ".join(str(item).split()).lower() for item in configured} | {"not given", ERASED}


def plan_erasure(found: CustomerData, policy: PrivacyPolicy, return_reasons: Sequence[str]) -> ErasurePlan:
    """What erasing `found` changes, before anything is changed (also the dry run's report)."""
    plan = ErasurePlan(email=found.email)
    conversations = found.conversations.values()
    plan.tracker_senders = sorted(c.sender_id for c in conversations if c.tracker_events)
    plan.stream_senders = sorted(set().union(*(c.stream_sender_ids for c in conversations)))
    plan.changes.append(Change("events in the tracker store", found.tracker_event_count, "delete",
                               f"{len(plan.tracker_senders)} conversation(s)"))
    plan.changes.append(Change("events in the event stream", found.stream_event_count, "delete",
                               f"{sum(1 for c in conversations if c.stream_events)} conversation(s)"))
    for name, rows, what in (("handoff_tickets", found.handoff_tickets, "handoff tickets"),
                             ("satisfaction_feedback", found.satisfaction_feedback, "satisfaction answers"),
                             ("conversation_sentiment", found.sentiment, "message sentiment rows"),
                             ("email_outbox", found.emails, "emails to the address")):
        plan.ids[name] = [row["_id"] for row in rows]
        plan.changes.append(Change(what, len(rows), "delete"))
    anonymise = policy.order_contact_data == "anonymise"
    if found.customers:
        plan.customer_ids = [customer["customer_id"] for customer in found.customers] if anonymise else []
        plan.changes.append(Change("customer record", len(found.customers), "anonymise" if anonymise else "keep",
                                   "name, email" + ("" if anonymise else "; privacy.order_contact_data: keep")))
        free_text = [row["_id"] for row in found.returns if free_text_reason(row["reason"], return_reasons)]
        plan.free_text_returns = free_text if anonymise else []
        plan.changes.append(Change("return reasons in the customer's words", len(free_text),
                                   "anonymise" if anonymise else "keep"))
        plan.changes.append(Change("orders", len(found.orders), "keep",
                                   f"the shop's records, with {len(found.returns)} return(s) and their refunds"))
    return plan


def erase(databases: Databases, plan: ErasurePlan) -> None:
    """Carry out `plan`. Each database commits on its own; see the module docstring for why in this order."""
    shop = databases.shop
    with session_scope(shop.engine) as session:
        for model in (HandoffTicket, SatisfactionFeedback, ConversationSentiment, OutboxEmail):
            for batch in chunks(plan.ids.get(model.__tablename__, [])):
                session.execute(delete(model).where(model.id.in_(batch)).execution_options(synchronize_session=False))
    _delete_conversations(databases.tracker, TRACKER_EVENTS, plan.tracker_senders)
    _delete_conversations(databases.events, STREAM_EVENTS, plan.stream_senders)
    with session_scope(shop.engine) as session:
        for batch in chunks(plan.free_text_returns):
            session.execute(update(Return).where(Return.id.in_(batch)).values(reason=ERASED)
                            .execution_options(synchronize_session=False))
        for customer_id in plan.customer_ids:
            session.execute(update(Customer).where(Customer.id == customer_id)
                            .values(name=ERASED, email=anonymised_email(customer_id))
                            .execution_options(synchronize_session=False))


def _delete_conversations(database: Database | None, table_name: str, senders: Sequence[str]) -> None:
    """Every event of these conversations: erasing a conversation from a store deletes all its events."""
    if database is None or not senders:
        return
    table = database.table(table_name)
    if table is None:
        return
    with database.engine.begin() as connection:
        for batch in chunks(list(senders)):
            connection.execute(delete(table).where(table.c.sender_id.in_(batch)))
