"""The service layer's business rules, on SQLite and PostgreSQL (see conftest.empty_engine)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from shop.cancellations import CancelRefused, cancel_order, cancel_refusal
from shop.db import session_scope
from shop.handoff import create_ticket, format_transcript
from shop.knowledge import load_answers
from shop.models import HandoffTicket, Order, OutboxEmail, Refund, Return
from shop.orders import (
    keyed_order_facts,
    normalise_email,
    normalise_reference,
    return_facts,
    spoken_day,
    verify_order,
    view_order,
)
from shop.refunds import describe_refunds
from shop.returns import ReturnRefused, create_return, match_line, refusal_rule, returnable_lines
from shop.settings import PROJECT_ROOT, load_settings
from tests.conftest import NOW


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("10001", "10001"), ("#10001", "10001"), (" order 10001 ", "10001"), ("r-12", "R-12"), ("R12", "R-12"),
     ("", None), ("hello there", None), ("x" * 60, None)],
)
def test_references_are_normalised(raw, expected):
    assert normalise_reference(raw) == expected


def test_emails_are_normalised():
    assert normalise_email(" Alice@Example.COM ") == "alice@example.com"
    assert normalise_email("not-an-email") is None


def test_verification_needs_the_matching_pair(shop_engine):
    with session_scope(shop_engine) as session:
        assert verify_order(session, "10001", "ALICE@example.com ").id == "10001"
        assert verify_order(session, "10001", "bob@example.com") is None
        assert verify_order(session, "99999", "alice@example.com") is None
        assert verify_order(session, "10001", None) is None


def test_a_return_id_finds_its_order(shop_engine):
    with session_scope(shop_engine) as session:
        ret = session.scalars(select(Return)).first()
        order = verify_order(session, ret.public_id, ret.line.order.customer.email)
        assert order.id == ret.line.order.id


def test_order_view_has_what_a_customer_asks_for(shop_engine):
    with session_scope(shop_engine) as session:
        shipped = view_order(session.get(Order, "10002"))
        pending = view_order(session.get(Order, "10003"))
    assert shipped.status == "shipped" and shipped.carrier == "DHL"
    assert shipped.tracking_number == "JD014600010002"
    assert shipped.delivery.startswith("estimated delivery")
    assert "2 x Black T-shirt (M)" in pending.items and pending.delivery == "not shipped yet"
    assert pending.tracking_number == "not assigned yet"


@pytest.mark.parametrize(
    ("order_id", "rule"),
    [("10001", None), ("10002", "not_delivered"), ("10004", "outside_window"), ("10005", "final_sale"),
     ("10006", "order_cancelled"), ("10007", "already_returned"), ("10003", "not_delivered")],
)
def test_return_rules(shop_engine, settings, order_id, rule):
    with session_scope(shop_engine) as session:
        assert refusal_rule(session.get(Order, order_id).lines[0], settings.returns) == rule


def test_return_window_and_final_sale_come_from_configuration(shop_engine, settings):
    generous = replace(settings.returns, window_days=60, allow_final_sale=True)
    with session_scope(shop_engine) as session:
        assert refusal_rule(session.get(Order, "10004").lines[0], generous) is None
        assert refusal_rule(session.get(Order, "10005").lines[0], generous) is None


def test_multi_item_order_lists_only_returnable_lines(shop_engine, settings):
    with session_scope(shop_engine) as session:
        skus = [line.sku for line in returnable_lines(session.get(Order, "10008"), settings.returns)]
    assert skus == ["KETTLE-01", "TEA-SET"]


@pytest.mark.parametrize(
    ("choice", "sku"),
    [("kettle", "KETTLE-01"), ("the electric kettle", "KETTLE-01"), ("2", "TEA-SET"), ("the second one", "TEA-SET"),
     ("APRON-SALE", "APRON-SALE"), ("a bicycle", None), ("", None)],
)
def test_customers_choose_items_in_their_own_words(shop_engine, choice, sku):
    with session_scope(shop_engine) as session:
        line = match_line(session.get(Order, "10008"), choice)
        assert (line.sku if line else None) == sku


def test_creating_a_return_records_refund_and_email(shop_engine, settings):
    with session_scope(shop_engine) as session:
        line = session.get(Order, "10001").lines[0]
        created = create_return(session, line, "damaged", "store_credit", settings.returns)
    assert created.return_id.startswith("R-") and created.amount == "25.00"
    assert created.refund_method == "store credit"
    with session_scope(shop_engine) as session:
        ret = session.get(Return, int(created.return_id[2:]))
        assert ret.reason == "damaged" and ret.line.sku == "MUG-01"
        assert ret.refund.status == "waiting_for_item" and ret.refund.amount == Decimal("25.00")
        email = session.scalars(select(OutboxEmail).where(OutboxEmail.to_address == "alice@example.com")).one()
        assert created.return_id in email.subject and email.sent_at is None


def test_an_item_cannot_be_returned_twice(shop_engine, settings):
    with session_scope(shop_engine) as session:
        line = session.get(Order, "10001").lines[0]
        create_return(session, line, "damaged", "original_payment", settings.returns)
    with pytest.raises(ReturnRefused) as refused, session_scope(shop_engine) as session:
        create_return(session, session.get(Order, "10001").lines[0], "again", "original_payment", settings.returns)
    assert refused.value.rule == "already_returned"
    with session_scope(shop_engine) as session:
        assert len(session.get(Order, "10001").lines[0].returns) == 1


def test_refused_return_writes_nothing(shop_engine, settings):
    with session_scope(shop_engine) as session:
        before = (count(session, Return), count(session, Refund), count(session, OutboxEmail))
    with pytest.raises(ReturnRefused), session_scope(shop_engine) as session:
        create_return(session, session.get(Order, "10005").lines[0], "meh", "original_payment", settings.returns)
    with session_scope(shop_engine) as session:
        assert (count(session, Return), count(session, Refund), count(session, OutboxEmail)) == before


def test_cancelling_a_pending_order(shop_engine):
    with session_scope(shop_engine) as session:
        cancel_order(session, "10003")
    with session_scope(shop_engine) as session:
        order = session.get(Order, "10003")
        assert order.status == "cancelled" and order.cancelled_at is not None
        assert order.refunds[-1].amount == Decimal("54.00") and order.refunds[-1].status == "processing"
        assert session.scalars(select(OutboxEmail).where(OutboxEmail.subject.contains("10003"))).one()


@pytest.mark.parametrize(("order_id", "rule"), [("10002", "already_shipped"), ("10001", "already_shipped"),
                                                 ("10006", "already_cancelled")])
def test_shipped_or_cancelled_orders_cannot_be_cancelled(shop_engine, order_id, rule):
    with session_scope(shop_engine) as session:
        status = session.get(Order, order_id).status
        assert cancel_refusal(session.get(Order, order_id)) == rule
    with pytest.raises(CancelRefused), session_scope(shop_engine) as session:
        cancel_order(session, order_id)
    with session_scope(shop_engine) as session:
        assert session.get(Order, order_id).status == status


def test_refund_descriptions(shop_engine, settings):
    labels = settings.returns.refund_methods
    with session_scope(shop_engine) as session:
        issued = describe_refunds(session.get(Order, "10007"), labels)
        processing = describe_refunds(session.get(Order, "10009"), labels)
        cancelled = describe_refunds(session.get(Order, "10006"), labels)
        none = describe_refunds(session.get(Order, "10001"), labels)
    assert len(issued) == 1 and "24.00" in issued[0] and "was issued on" in issued[0]
    assert "being processed" in processing[0] and "Small wool rug" in processing[0]
    assert "cancellation" in cancelled[0] and "149.00" in cancelled[0]
    assert none == []


def test_handoff_ticket_keeps_reason_and_transcript(shop_engine):
    transcript = format_transcript([("customer", "where   is my order"), ("bot", "x" * 600)])
    assert transcript.splitlines()[0] == "customer: where is my order"
    assert len(transcript.splitlines()[1]) < 520
    with session_scope(shop_engine) as session:
        ticket_id = create_ticket(session, "conv-1", "customer asked for a person", transcript).public_id
    with session_scope(shop_engine) as session:
        ticket = session.scalars(select(HandoffTicket)).one()
        assert ticket.public_id == ticket_id and ticket.conversation_id == "conv-1"
        assert "where is my order" in ticket.transcript and ticket.status == "open"


def test_policy_answers_follow_the_configured_window(settings, tmp_path):
    answers = load_answers(PROJECT_ROOT / "data/knowledge/policies.yml", replace(settings, returns=replace(
        settings.returns, window_days=45)))
    assert "45 days" in answers["policy_returns"]
    assert set(answers) == {"policy_shipping", "policy_returns", "policy_refunds", "policy_payment", "policy_contact"}
    broken = tmp_path / "broken.yml"
    broken.write_text("topics:\n  shipping:\n    answer: no intent here\n")
    with pytest.raises(ValueError, match="shipping"):
        load_answers(broken, settings)


def test_environment_overrides_settings(monkeypatch):
    monkeypatch.setenv("SHOP_RETURN_WINDOW_DAYS", "14")
    monkeypatch.setenv("DATABASE_URL", "postgresql://shop@db/shop")
    settings = load_settings()
    assert settings.returns.window_days == 14 and settings.database_url == "postgresql://shop@db/shop"
    monkeypatch.setenv("SHOP_RETURN_WINDOW_DAYS", "-1")
    with pytest.raises(ValueError):
        load_settings()


def test_relative_sqlite_path_is_relative_to_the_project(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "sqlite:///var/test-relative.db")
    assert load_settings().database_url == f"sqlite:///{Path(PROJECT_ROOT) / 'var/test-relative.db'}"


def test_an_orders_facts_say_whether_and_until_when_it_can_be_cancelled_or_returned(shop_engine, settings):
    """What the generator may tell a verified customer who asks "can I still send it back?": the shop's own rules
    applied to the order, the window's last day spelled out, consistent with what the return skill would do."""
    today = NOW.date()
    with session_scope(shop_engine) as session:
        def facts(order_id: str, policy=settings.returns) -> dict:
            return dict(return_facts(session.get(Order, order_id), today, policy))

        recent = session.get(Order, "10001")
        last_day = (recent.delivered_at + timedelta(days=settings.returns.window_days)).date()
        assert facts("10001") == {"return_window": f"Order 10001 can be returned until {spoken_day(last_day)}."}
        assert "closed on" in facts("10004")["return_window"] and "no longer" in facts("10004")["return_window"]
        assert refusal_rule(session.get(Order, "10004").lines[0], settings.returns) == "outside_window"
        assert facts("10004", replace(settings.returns, window_days=60))["return_window"].startswith(
            "Order 10004 can be returned until ")
        assert facts("10002") == {"return_window": f"Order 10002 can be returned within "
                                                   f"{settings.returns.window_days} days of delivery."}
        assert facts("10003") == {"cancellable": "Order 10003 has not shipped yet, so it can still be cancelled."}
        assert "final sale" in facts("10005")["not_returnable"] and "return_window" not in facts("10005")
        assert "already been returned" in facts("10007")["not_returnable"]
        assert facts("10006") == {}
        # every fact kind is one the generator can find by its customers' questions
        kinds = {kind for order in session.scalars(select(Order)) for kind, _ in keyed_order_facts(order, today)}
    assert {"cancellable", "not_returnable", "return_window"} <= kinds
