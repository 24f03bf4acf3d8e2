"""Whole conversations over the REST channel, through NLU, policies, the action server and the database."""

from __future__ import annotations

import re

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from shop.models import HandoffTicket, Order, OutboxEmail, Return

pytestmark = pytest.mark.e2e


def order(shop, demo_number: str) -> Order:
    """The order that is `demo_number` in the demo shop, in this shop's database."""
    with Session(shop.engine) as session:
        found = session.get(Order, shop.number(demo_number))
        session.expunge_all()
        return found


def test_order_status_reports_database_status_and_tracking(shop):
    expected = order(shop, "10002")
    assert f"e.g. {shop.profile.example}" in shop.say("status-1", "where is my order?")
    assert "email" in shop.say("status-1", shop.typed("10002"))
    reply = shop.say("status-1", "alice@example.com")
    assert f"Order {expected.id} is {expected.status}" in reply
    assert expected.tracking_number in reply and expected.carrier in reply and "Desk lamp" in reply


def test_wrong_email_reveals_nothing_and_looks_like_an_unknown_order(shop):
    shop.say("probe-1", "where is my order")
    shop.say("probe-1", shop.typed("10002"))
    wrong_email = shop.say("probe-1", "bob@example.com")
    shop.say("probe-2", "where is my order")
    shop.say("probe-2", shop.typed("19999"))
    unknown_order = shop.say("probe-2", "bob@example.com")
    assert "couldn't find an order" in wrong_email
    assert wrong_email == unknown_order
    tracking = order(shop, "10002").tracking_number
    assert tracking not in wrong_email and "Desk lamp" not in wrong_email and "shipped" not in wrong_email


def test_return_creates_record_and_confirmation_email(shop):
    shop.say("return-1", "i want to return an item")
    shop.say("return-1", f"order no. {shop.typed('10008')}")
    replies = shop.send("return-1", "dan@example.com")
    buttons = [button for reply in replies for button in reply.get("buttons", [])]
    assert [b["title"] for b in buttons] == ["Electric kettle", "Tea sampler"]
    assert "Why are you returning it" in shop.say("return-1", buttons[0]["payload"])
    assert "refunded" in shop.say("return-1", "it arrived broken")
    confirmation = shop.say("return-1", "store credit please")
    assert "Return R-" in confirmation and "Electric kettle" in confirmation
    return_id = int(confirmation.split("Return R-")[1].split()[0])
    with Session(shop.engine) as session:
        ret = session.get(Return, return_id)
        assert ret.line.sku == "KETTLE-01" and ret.reason == "it arrived broken" and ret.refund_method == "store_credit"
        mail = session.scalars(select(OutboxEmail).where(OutboxEmail.subject.contains(f"R-{return_id}"))).one()
        assert mail.to_address == "dan@example.com"


def test_cancel_needs_a_yes_and_shipped_orders_are_refused(shop):
    shop.say("cancel-1", "please cancel my order")
    shop.say("cancel-1", f"#{shop.number('10016')}")
    question = shop.say("cancel-1", "dan@example.com")
    assert f"cancel order {shop.number('10016')}" in question
    assert order(shop, "10016").status == "pending"
    assert "is cancelled" in shop.say("cancel-1", "yes")
    assert order(shop, "10016").status == "cancelled"

    shop.say("cancel-2", f"cancel order {shop.typed('10011')}")
    refused = shop.say("cancel-2", "farid@example.com")
    assert "can't be cancelled" in refused and "start a return" in refused
    assert order(shop, "10011").status == "shipped"


def test_policy_question_mid_form_then_the_form_resumes(shop):
    shop.say("digress-1", "I want to return something")
    answer = shop.say("digress-1", "what is your return policy?")
    assert "30 days of delivery" in answer and "order number" in answer
    assert "Okay, I've stopped" in shop.say("digress-1", "stop")


def test_person_on_request_creates_a_ticket(shop):
    shop.say("handoff-1", "where is my refund")
    reply = shop.say("handoff-1", "I want to talk to a human")
    assert "ticket H-" in reply
    with Session(shop.engine) as session:
        ticket = session.scalars(select(HandoffTicket).where(HandoffTicket.conversation_id == "handoff-1")).one()
    # Each customer line carries that message's sentiment when the pipeline has the SentimentAnalyzer.
    assert re.search(r"^customer( \[\w+ [\d.]+\])?: where is my refund$", ticket.transcript, re.M)


@pytest.mark.parametrize(
    "message",
    ["", "   ", "a" * 10_000, "🙂🙂🙂 📦?", "我的订单在哪里", "где мой заказ", "مرحبا", "<script>alert(1)</script>",
     "'; drop table orders; --", "/inform{\"order_id\": ", "\x00\x01"],
    ids=["empty", "blank", "10k-chars", "emoji", "chinese", "russian", "arabic", "html", "sql", "broken-payload",
         "control"],
)
def test_odd_input_gets_an_answer_and_the_conversation_goes_on(servers, message):
    sender = f"odd-{abs(hash(message))}"
    response = requests.post(f"{servers.rasa_url}/webhooks/rest/webhook",
                             json={"sender": sender, "message": message}, timeout=60)
    assert response.status_code < 500
    assert "Northwind" in servers.say(sender, "hello")


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"[]", b"null", b'{"sender": "x"}', b'{"message": "hi"}', b'{"sender": "x", "message": 5}',
     b'{"sender": "", "message": "hi"}', b'{"sender": {"a": 1}, "message": "hi"}'],
)
def test_malformed_requests_get_400_with_the_reason(servers, body):
    response = requests.post(f"{servers.rasa_url}/webhooks/rest/webhook", data=body,
                             headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == 400, response.text
    assert "must be" in response.text
    assert "Northwind" in servers.say("after-malformed", "hi")
