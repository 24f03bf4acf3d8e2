"""Retention deletes (or anonymises) only what is older than the configured ages, on SQLite and PostgreSQL, in Rasa's
tracker store, the event stream and the shop's tables; a dry run changes nothing and a second run finds nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Dict, Tuple

import pytest
from rasa.shared.core.events import UserUttered
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shop.event_consumer import store
from shop.limits import limit_events
from shop.models import (
    ConversationSentiment,
    Customer,
    HandoffTicket,
    Order,
    OrderLine,
    OutboxEmail,
    Return,
    SatisfactionFeedback,
)
from shop.pii import pseudonym
from shop.privacy.customer import ERASED
from shop.privacy.retention import apply_retention
from shop.settings import PrivacyPolicy, get_settings
from tests.conftest import NOW
from tests.privacy.world import ALICE_CONVERSATIONS, OTHER_CONVERSATIONS, World, ago, conversation

POLICY = PrivacyPolicy(order_contacts_days=365)
OLD_CUSTOMER = "olga@example.com"


@pytest.fixture
def aged(world: World) -> World:
    """The world plus one of everything that is too old, and a conversation that started long ago but goes on."""
    world.save(conversation("old-1", [("hi, olga@example.com here", "Hello!", {})], ago(200)))
    long_running = conversation("long-running", [("hello", "Hi!", {})], ago(200))
    world.save(long_running)
    long_running.update(UserUttered("still there?", timestamp=ago(1)))
    world.save(long_running)
    old = ago(200)
    store(world.events, [
        {"message_id": "old-1-a", "sender_id": "old-1", "type_name": "user", "timestamp": old, "received_at": old,
         "data": json.dumps({"event": "user", "text": "[email] here"})},
        {"message_id": "old-2-a", "sender_id": "old-2", "type_name": "user", "timestamp": None, "received_at": old,
         "data": json.dumps({"event": "user", "text": "no timestamp"})},
        {"message_id": "long-a", "sender_id": "long-running", "type_name": "user", "timestamp": old,
         "received_at": old, "data": "{}"},
        {"message_id": "long-b", "sender_id": "long-running", "type_name": "user", "timestamp": ago(1),
         "received_at": ago(1), "data": "{}"},
    ])
    long_ago = NOW - timedelta(days=400)
    with Session(world.shop, future=True) as session:
        session.add_all([
            HandoffTicket(conversation_id="old-1", reason="complaint", transcript="customer: olga",
                          created_at=long_ago),
            SatisfactionFeedback(conversation_id="old-1", rating=2, answer="2", created_at=long_ago),
            ConversationSentiment(conversation_id="old-1", message_key="m1", turn=1, label="negative",
                                  confidence=0.9, negative=0.9, neutral=0.05, positive=0.05, recorded_at=long_ago),
            OutboxEmail(to_address=OLD_CUSTOMER, subject="Your return", body="Hello Olga",
                        created_at=NOW - timedelta(days=100)),
        ])
        olga = Customer(email=OLD_CUSTOMER, name="Olga Berg")
        line = OrderLine(sku="LAMP-02", item_name="Desk lamp", quantity=1, unit_price=Decimal("39.90"))
        session.add(Order(id="90001", customer=olga, status="delivered", ordered_at=NOW - timedelta(days=800),
                          delivered_at=NOW - timedelta(days=795), lines=[line]))
        session.add_all([Return(line=line, reason="olga's lamp flickered", refund_method="store_credit",
                                created_at=NOW - timedelta(days=790)),
                         Return(line=line, reason="Damaged", refund_method="store_credit")])
        session.commit()
    limit_events.create(world.shop, checkfirst=True)
    with world.shop.begin() as connection:
        connection.execute(limit_events.insert(), [{"key": "sender:old", "at": ago(2)},
                                                   {"key": "sender:new", "at": ago(0.01)}])
    return world


def retention(world: World, policy: PrivacyPolicy = POLICY, dry_run: bool = False) -> Dict[str, Tuple[int, str]]:
    result = apply_retention(world.databases(), policy, get_settings().returns.reasons, now=NOW, dry_run=dry_run)
    return {change.what: (change.count, change.action) for change in result}


def test_dry_run_counts_the_old_data_and_changes_nothing(aged: World) -> None:
    before = aged.snapshot()
    counts = retention(aged, dry_run=True)
    assert aged.snapshot() == before
    old_tracker_events = 6  # session start (3 events), one turn (message, reply, listen)
    assert counts == {
        "events in the tracker store": (old_tracker_events, "delete"),
        "events in the event stream": (2, "delete"),
        "handoff tickets": (1, "delete"),
        "satisfaction answers": (1, "delete"),
        "message sentiment rows": (1, "delete"),
        "emails in the outbox": (1, "delete"),
        "customer records": (1, "anonymise"),
        "return reasons in the customers' words": (1, "anonymise"),
        "verification throttle counters (hashed)": (1, "delete"),
    }


def test_retention_deletes_only_old_data_and_a_second_run_finds_nothing(aged: World) -> None:
    retention(aged)
    # whole conversations only: the one that started long ago but went on yesterday stays, every event of it
    assert aged.senders("events") == sorted(ALICE_CONVERSATIONS - {"alice-stream-only", "alice-ticket-only"}
                                            | OTHER_CONVERSATIONS | {"long-running"})
    with aged.tracker.connect() as connection:
        assert connection.execute(text("select count(*) from events where sender_id = 'long-running'")).scalar() == 7
    assert aged.senders("conversation_events") == sorted({"alice-email", "alice-order-only", "alice-stream-only",
                                                          pseudonym("ALICE@Example.com"), "bob-1", "long-running"})
    with Session(aged.shop, future=True) as session:
        assert "old-1" not in session.scalars(select(HandoffTicket.conversation_id)).all()
        assert len(session.scalars(select(HandoffTicket)).all()) == 4
        assert session.scalars(select(SatisfactionFeedback.conversation_id)).all() == ["alice-order-only", "bob-1"]
        assert len(session.scalars(select(ConversationSentiment)).all()) == 4
        assert OLD_CUSTOMER not in session.scalars(select(OutboxEmail.to_address)).all()
        olga = session.get(Order, "90001").customer
        assert olga.name == ERASED and olga.email.endswith("@erased.invalid")
        assert sorted(ret.reason for ret in olga.orders[0].lines[0].returns) == sorted([ERASED, "Damaged"])
        others = session.scalars(select(Customer).where(Customer.id != olga.id)).all()
        assert len(others) == 6 and all(customer.email.endswith("@example.com") for customer in others)
        assert session.get(Order, "90001").lines[0].item_name == "Desk lamp"  # the order itself stays
    with aged.shop.connect() as connection:
        assert connection.execute(select(limit_events.c.key)).scalars().all() == ["sender:new"]
    before = aged.snapshot()
    again = retention(aged)
    assert all(count == 0 for count, _ in again.values())
    assert aged.snapshot() == before


def test_zero_days_keeps_everything_and_keep_never_anonymises(aged: World) -> None:
    before = aged.snapshot()
    forever = PrivacyPolicy(conversations_days=0, handoff_tickets_days=0, feedback_days=0, emails_days=0,
                            order_contacts_days=365, order_contact_data="keep")
    counts = retention(aged, forever)
    assert counts == {"verification throttle counters (hashed)": (1, "delete")}
    after = aged.snapshot()
    assert {name: rows for name, rows in after.items() if "limit_events" not in name} == \
        {name: rows for name, rows in before.items() if "limit_events" not in name}


def test_retention_without_a_tracker_store_or_event_stream(world: World) -> None:
    databases = world.databases()
    databases.tracker = databases.events = None
    result = apply_retention(databases, POLICY, (), now=NOW + timedelta(days=3650))
    assert {change.what for change in result} == {
        "handoff tickets", "satisfaction answers", "message sentiment rows", "emails in the outbox",
        "customer records", "return reasons in the customers' words"}
    assert all(change.count > 0 for change in result)  # ten years on, all of it is old
