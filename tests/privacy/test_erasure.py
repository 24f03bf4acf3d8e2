"""Finding, exporting and erasing one customer's data across the shop database, Rasa's tracker store and the event
stream, on SQLite and PostgreSQL; the other customer and the look-alike address stay untouched."""

from __future__ import annotations

import json
from typing import Dict, Tuple

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from shop.models import (
    ConversationSentiment,
    Customer,
    HandoffTicket,
    Order,
    OutboxEmail,
    Return,
    SatisfactionFeedback,
)
from shop.pii import pseudonym
from shop.privacy.customer import ERASED, CustomerData, find_customer_data
from shop.privacy.erasure import ErasurePlan, erase, plan_erasure
from shop.privacy.export import export_document
from shop.privacy.matching import valid_email
from shop.settings import PrivacyPolicy, get_settings
from tests.privacy.world import ALICE, ALICE_CONVERSATIONS, ALICE_REASON, BOB, OTHER_CONVERSATIONS, World

ALICE_ORDERS = {"10001", "10002", "10013", "10019"}


def find(world: World, email: str = ALICE) -> CustomerData:
    return find_customer_data(world.databases(), email)


def plan(found: CustomerData, policy: PrivacyPolicy | None = None) -> ErasurePlan:
    return plan_erasure(found, policy or PrivacyPolicy(), get_settings().returns.reasons)


def changes(erasure: ErasurePlan) -> Dict[str, Tuple[int, str]]:
    return {change.what: (change.count, change.action) for change in erasure.changes}


def events_of(world: World, table: str, senders) -> int:
    engine = world.tracker if table == "events" else world.events
    with engine.connect() as connection:
        return sum(1 for sender in connection.execute(select(_table(engine, table).c.sender_id)).scalars()
                   if sender in senders)


def _table(engine, name):
    from sqlalchemy import MetaData, Table

    return Table(name, MetaData(), autoload_with=engine)


def test_finds_every_conversation_of_the_customer_and_no_one_elses(world: World) -> None:
    found = find(world, valid_email("  Alice@EXAMPLE.com "))
    assert set(found.conversations) == ALICE_CONVERSATIONS
    reasons = {sender: conversation.reasons for sender, conversation in found.conversations.items()}
    assert reasons["alice-order-only"] == {"verified order 10002 (tracker store)",
                                           "verified order 10002 (event stream)"}
    assert "mentions the email (tracker store)" in reasons["alice-email"]
    # found in the event stream under its pseudonym (by the verified order) and merged with the tracker's
    assert reasons["ALICE@Example.com"] == {"its conversation id is the email address",
                                            "verified order 10019 (tracker store)",
                                            "verified order 10019 (event stream)"}
    assert reasons["alice-stream-only"] == {"mentions the email (event stream)"}
    assert reasons["alice-ticket-only"] == {"a handoff ticket's transcript mentions the email"}
    assert {order["order_id"] for order in found.orders} == ALICE_ORDERS
    assert [row["reason"] for row in found.returns] == [ALICE_REASON]
    assert [mail["to"] for mail in found.emails] == [ALICE]
    assert {ticket["conversation_id"] for ticket in found.handoff_tickets} == {"alice-email", "alice-ticket-only"}
    assert [row["conversation_id"] for row in found.satisfaction_feedback] == ["alice-order-only"]
    assert sorted(row["conversation_id"] for row in found.sentiment) == ["alice-email", "alice-email",
                                                                        "alice-ticket-only"]


def test_dry_run_changes_nothing_and_counts_what_would_change(world: World) -> None:
    before = world.snapshot()
    found = find(world)
    erasure = plan(found)
    assert world.snapshot() == before
    tracker_events = events_of(world, "events", ALICE_CONVERSATIONS)
    stream_events = events_of(world, "conversation_events", ALICE_CONVERSATIONS | {pseudonym("ALICE@Example.com")})
    assert tracker_events > 20 and stream_events > 10
    assert changes(erasure) == {
        "events in the tracker store": (tracker_events, "delete"),
        "events in the event stream": (stream_events, "delete"),
        "handoff tickets": (2, "delete"),
        "satisfaction answers": (1, "delete"),
        "message sentiment rows": (3, "delete"),
        "emails to the address": (1, "delete"),
        "customer record": (1, "anonymise"),
        "return reasons in the customer's words": (1, "anonymise"),
        "orders": (4, "keep"),
    }
    assert erasure.tracker_senders == sorted({"alice-email", "alice-order-only", "ALICE@Example.com"})
    # the consumer stored the conversation whose id is an email under its pseudonym
    assert erasure.stream_senders == sorted({"alice-email", "alice-order-only", "alice-stream-only",
                                             pseudonym("ALICE@Example.com")})
    assert pseudonym("ALICE@Example.com") in world.senders("conversation_events")


def test_export_holds_the_customers_rows_and_events_and_nobody_elses(world: World) -> None:
    document = json.loads(json.dumps(export_document(find(world), "Northwind Goods"), default=str))
    assert [record["name"] for record in document["customer_records"]] == ["Alice Martin"]
    assert {order["order_id"] for order in document["orders"]} == ALICE_ORDERS
    order = next(order for order in document["orders"] if order["order_id"] == "10001")
    assert order["items"][0]["item"] == "Ceramic coffee mug" and order["returns"][0]["reason"] == ALICE_REASON
    assert order["refunds"][0]["amount"] == "25.00"
    assert document["emails"][0]["subject"].startswith("Your return R-")
    assert len(document["handoff_tickets"]) == 2 and len(document["message_sentiment"]) == 3
    assert document["satisfaction_feedback"][0]["answer"] == "5, great"
    conversations = {conversation["conversation_id"]: conversation for conversation in document["conversations"]}
    assert set(conversations) == ALICE_CONVERSATIONS
    email_conversation = conversations["alice-email"]
    assert any(line.endswith("customer: I want to return the mug") for line in email_conversation["transcript"])
    assert any(event["event"].get("name") == "verified_order_id" for event in email_conversation["events"])
    assert "[email]" in json.dumps(email_conversation["event_stream_copy"])  # the stream's copy was masked
    assert conversations["alice-stream-only"]["transcript"][0].endswith("customer: I am Alice@example.com")
    assert document["summary"]["conversations"] == 5 and document["summary"]["orders"] == 4
    text = json.dumps(document)
    for stranger in (BOB, "Bob Chen", "jimalice", "bob-1", "lookalike"):
        assert stranger not in text


def test_erase_removes_and_anonymises_only_the_customers_data(world: World) -> None:
    found = find(world)
    customer_id = found.customers[0]["customer_id"]
    erase(world.databases(), plan(found))
    assert world.senders("events") == sorted(OTHER_CONVERSATIONS)
    assert world.senders("conversation_events") == ["bob-1"]
    with Session(world.shop, future=True) as session:
        assert sorted(session.scalars(select(HandoffTicket.conversation_id))) == ["bob-1", "lookalike"]
        assert list(session.scalars(select(SatisfactionFeedback.conversation_id))) == ["bob-1"]
        assert list(session.scalars(select(ConversationSentiment.conversation_id))) == ["bob-1"]
        assert list(session.scalars(select(OutboxEmail.to_address))) == [BOB]
        customer = session.get(Customer, customer_id)
        assert customer.name == ERASED and customer.email == f"customer-{customer_id}@erased.invalid"
        assert {order.id for order in customer.orders} == ALICE_ORDERS  # the shop's records stay
        reasons = dict(session.execute(select(Return.reason, Order.customer_id).join(Return.line)
                                       .join(Order)).all())
        assert reasons[ERASED] == customer_id
        assert {"damaged", "doesn't fit", "my own words, bob"} <= set(reasons)  # others' and configured ones stay
        bob = session.scalars(select(Customer).where(Customer.email == BOB)).one()
        assert bob.name == "Bob Chen" and len(bob.orders) == 4


def test_a_second_erasure_finds_nothing_and_changes_nothing(world: World) -> None:
    erase(world.databases(), plan(find(world)))
    before = world.snapshot()
    again = find(world)
    assert not again.found_anything and plan(again).nothing_to_do
    erase(world.databases(), plan(again))
    assert world.snapshot() == before


def test_keeping_the_contact_data_keeps_the_customer_and_return_reasons(world: World) -> None:
    keep = PrivacyPolicy(order_contact_data="keep")
    erasure = plan(find(world), keep)
    assert changes(erasure)["customer record"] == (1, "keep")
    assert changes(erasure)["return reasons in the customer's words"] == (1, "keep")
    erase(world.databases(), erasure)
    with Session(world.shop, future=True) as session:
        customer = session.get(Order, "10001").customer
        assert (customer.name, customer.email) == ("Alice Martin", ALICE)
        assert ALICE_REASON in session.scalars(select(Return.reason)).all()
    assert world.senders("events") == sorted(OTHER_CONVERSATIONS)
    again = find(world)
    assert again.customers and not again.conversations and plan(again, keep).nothing_to_do


def test_an_erasure_that_fails_half_way_is_finished_by_running_it_again(world: World, monkeypatch) -> None:
    """The tracker store fails after the shop's conversation rows were deleted: the customer record is still there
    (it is anonymised last), so the next run still finds the conversations through the email and the orders."""
    import sqlalchemy.exc

    import shop.privacy.erasure as erasure_module

    def unreachable(*args, **kwargs):
        raise sqlalchemy.exc.OperationalError("delete", {}, Exception("server closed the connection"))

    with monkeypatch.context() as patch:
        patch.setattr(erasure_module, "_delete_conversations", unreachable)
        with pytest.raises(sqlalchemy.exc.OperationalError):
            erase(world.databases(), plan(find(world)))
    with Session(world.shop, future=True) as session:
        assert session.get(Order, "10001").customer.email == ALICE
        assert session.scalars(select(HandoffTicket.conversation_id)).all() == ["bob-1", "lookalike"]
    resumed = find(world)
    assert {"alice-email", "alice-order-only", "ALICE@Example.com", "alice-stream-only"} <= set(resumed.conversations)
    erase(world.databases(), plan(resumed))
    assert world.senders("events") == sorted(OTHER_CONVERSATIONS)
    assert world.senders("conversation_events") == ["bob-1"]
    assert not find(world).found_anything


def test_customer_records_whose_emails_differ_only_in_case_are_all_hers(world: World) -> None:
    """Older imports may hold the same address twice in different case (the importer matches case-insensitively)."""
    from datetime import datetime
    from decimal import Decimal

    from shop.models import OrderLine

    with Session(world.shop, future=True) as session:
        legacy = Customer(email="Alice@Example.COM", name="A. Martin")
        session.add(Order(id="90002", customer=legacy, status="delivered", ordered_at=datetime(2020, 1, 2),
                          lines=[OrderLine(sku="MUG-01", item_name="Ceramic coffee mug", quantity=1,
                                           unit_price=Decimal("12.50"))]))
        session.commit()
    found = find(world)
    assert [record["name"] for record in found.customers] == ["Alice Martin", "A. Martin"]
    assert {order["order_id"] for order in found.orders} == ALICE_ORDERS | {"90002"}
    assert changes(plan(found))["customer record"] == (2, "anonymise")
    erase(world.databases(), plan(found))
    with Session(world.shop, future=True) as session:
        assert {session.get(Order, order_id).customer.name for order_id in ALICE_ORDERS | {"90002"}} == {ERASED}
    assert not find(world).found_anything
