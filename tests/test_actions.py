"""Every custom action, through rasa-sdk Trackers and a CollectingDispatcher, against a real database."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from actions.cancel import ActionAskCancelConfirmed, ActionSubmitCancel, ValidateCancelForm
from actions.forms import ActionAskOrderId, ActionStopForm
from actions.handoff import ActionDeclineOffer, ActionFallback, ActionHandoff
from actions.order_status import ActionOrderStatus, ValidateOrderStatusForm
from actions.policy import ActionAnswerPolicy
from actions.refunds import ActionRefundStatus, ValidateRefundForm
from actions.returns import ActionAskReturnItem, ActionSubmitReturn, ValidateReturnForm, parse_refund_method
from generator.service import Reply
from shop.db import session_scope
from shop.models import HandoffTicket, Order, OutboxEmail, Return
from tests.support import bot_event, make_tracker, slot_events, texts, user_event

DOMAIN = {
    "forms": {
        "order_status_form": {"required_slots": ["order_id", "order_email"]},
        "return_form": {"required_slots": ["order_id", "order_email", "return_item", "return_reason", "refund_method"]},
        "refund_form": {"required_slots": ["order_id", "order_email"]},
        "cancel_form": {"required_slots": ["order_id", "order_email", "cancel_confirmed"]},
    }
}


def verified(order_id: str, email: str, **slots) -> dict:
    return {"order_id": order_id, "order_email": email, "verified_order_id": order_id, "verified_email": email, **slots}


async def validate(action, slots=None, **new_slots):
    """Run a form validation; the result's requested_slot is the slot the form asks for next.

    When the validation leaves requested_slot alone, Rasa's FormAction asks for the first empty slot
    in the domain's order, so that is computed here the same way."""
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(slots=slots, new_slots=new_slots, active_loop=action.form_name())
    result = slot_events(await action.run(dispatcher, tracker, DOMAIN))
    if "requested_slot" not in result:
        filled = {**(slots or {}), **new_slots, **result}
        required = DOMAIN["forms"][action.form_name()]["required_slots"]
        result["requested_slot"] = next((slot for slot in required if filled.get(slot) is None), None)
    return dispatcher, result


def run(action, **tracker_args):
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, make_tracker(**tracker_args), DOMAIN)
    if inspect.isawaitable(events):  # actions that wait for the generator are coroutines
        events = asyncio.run(events)
    return dispatcher, slot_events(events)


async def test_matching_pair_is_verified(db):
    dispatcher, slots = await validate(ValidateOrderStatusForm(), order_id="#10002", order_email="Alice@Example.com")
    assert slots["verified_order_id"] == "10002" and slots["verified_email"] == "alice@example.com"
    assert slots["verification_failures"] == 0
    assert dispatcher.messages == []


async def test_wrong_email_and_unknown_order_look_the_same(db):
    wrong_email = await validate(ValidateOrderStatusForm(), order_id="10002", order_email="bob@example.com")
    unknown = await validate(ValidateOrderStatusForm(), order_id="99999", order_email="bob@example.com")
    assert texts(wrong_email[0]) == texts(unknown[0]) != ""
    assert wrong_email[1] == unknown[1]
    assert wrong_email[1]["order_id"] is None and wrong_email[1]["verification_failures"] == 1
    assert "verified_order_id" not in [k for k, v in wrong_email[1].items() if v]


async def test_invalid_formats_are_asked_again(db):
    dispatcher, slots = await validate(ValidateOrderStatusForm(), order_id="my order from tuesday")
    assert slots["order_id"] is None and "doesn't look like one of our order numbers" in texts(dispatcher)
    dispatcher, slots = await validate(ValidateOrderStatusForm(), {"order_id": "10001"}, order_email="alice at home")
    assert slots["order_email"] is None and "email address" in texts(dispatcher)


async def test_third_failure_ends_the_form_and_offers_a_person(db):
    _, slots = await validate(
        ValidateOrderStatusForm(), {"verification_failures": 2}, order_id="10001", order_email="eve@example.com"
    )
    assert slots["verification_failures"] == 3 and slots["requested_slot"] is None
    dispatcher, events = run(ActionOrderStatus(), slots={"verification_failures": 3})
    assert "pass this to a person" in texts(dispatcher)
    assert events["pending_offer"] == "handoff" and events["verification_failures"] == 0


def test_order_status_reports_the_database_truth(db):
    dispatcher, _ = run(ActionOrderStatus(), slots=verified("10002", "alice@example.com"))
    said = texts(dispatcher)
    assert "Order 10002 is shipped" in said and "JD014600010002" in said and "DHL" in said
    assert "Desk lamp" in said and "estimated delivery" in said


def test_unverified_slots_reveal_nothing(db):
    # Order number and email filled but never verified together (e.g. slots set by hand).
    dispatcher, _ = run(ActionOrderStatus(), slots={"order_id": "10002", "order_email": "bob@example.com"})
    assert "10002" not in texts(dispatcher) and "JD0146" not in texts(dispatcher)
    # Verified once, then the order number changed: the old verification does not carry over.
    slots = {**verified("10002", "alice@example.com"), "order_id": "10003"}
    dispatcher, _ = run(ActionOrderStatus(), slots=slots)
    assert "10003" not in texts(dispatcher) and "T-shirt" not in texts(dispatcher)


async def test_single_item_order_skips_the_item_question(db):
    _, slots = await validate(ValidateReturnForm(), order_id="10001", order_email="alice@example.com")
    assert slots["return_item"] == "MUG-01" and slots["requested_slot"] == "return_reason"


async def test_multi_item_order_offers_returnable_items(db):
    _, slots = await validate(ValidateReturnForm(), order_id="10008", order_email="dan@example.com")
    assert slots["requested_slot"] == "return_item"
    dispatcher, _ = run(ActionAskReturnItem(), slots=verified("10008", "dan@example.com"))
    titles = [button["title"] for button in dispatcher.messages[0]["buttons"]]
    assert titles == ["Electric kettle", "Tea sampler"]
    assert dispatcher.messages[0]["buttons"][0]["payload"] == '/inform{"return_item": "KETTLE-01"}'


async def test_choosing_an_item_in_words_and_a_refused_item(db):
    slots = verified("10008", "dan@example.com")
    _, chosen = await validate(ValidateReturnForm(), slots, return_item="the kettle please")
    assert chosen["return_item"] == "KETTLE-01" and chosen["requested_slot"] == "return_reason"
    dispatcher, refused = await validate(ValidateReturnForm(), slots, return_item="apron")
    assert refused["return_item"] is None and "final-sale" in texts(dispatcher)


async def test_order_with_nothing_returnable_ends_form_with_the_rule(db):
    _, slots = await validate(ValidateReturnForm(), order_id="10004", order_email="bob@example.com")
    assert slots["requested_slot"] is None
    dispatcher, events = run(ActionSubmitReturn(), slots=verified("10004", "bob@example.com"))
    assert "outside our return window" in texts(dispatcher) and "30 days" in texts(dispatcher)
    dispatcher, _ = run(ActionSubmitReturn(), slots=verified("10002", "alice@example.com"))
    assert "hasn't been delivered" in texts(dispatcher)


@pytest.mark.parametrize(
    ("text", "method"),
    [("store credit please", "store_credit"), ("back to my card", "original_payment"),
     ("original_payment", "original_payment"), ("bitcoin", None)],
)
def test_refund_method_in_free_text(text, method):
    assert parse_refund_method(text) == method


async def test_reason_and_method_are_validated(db):
    slots = verified("10001", "alice@example.com", return_item="MUG-01")
    dispatcher, result = await validate(ValidateReturnForm(), slots, return_reason="!!", refund_method="bitcoin")
    assert result["return_reason"] is None and result["refund_method"] is None
    assert "original payment method" in texts(dispatcher)


def test_submitting_a_return_writes_record_and_outbox(db):
    slots = verified("10001", "alice@example.com", return_item="MUG-01", return_reason="damaged",
                     refund_method="store_credit")
    dispatcher, events = run(ActionSubmitReturn(), slots=slots)
    said = texts(dispatcher)
    assert "Return R-" in said and "Ceramic coffee mug" in said and "25.00" in said and "store credit" in said
    assert events["return_item"] is None and events["refund_method"] is None
    return_id = int(said.split("Return R-")[1].split()[0])
    with session_scope(db) as session:
        ret = session.get(Return, return_id)
        assert ret.reason == "damaged" and ret.refund_method == "store_credit" and ret.line.order_id == "10001"
        outbox = session.scalars(select(OutboxEmail).where(OutboxEmail.subject.contains(f"R-{return_id}"))).one()
        assert outbox.to_address == "alice@example.com"
    dispatcher, _ = run(ActionSubmitReturn(), slots=slots)
    assert "already been returned" in texts(dispatcher)


def test_refund_status_by_order_and_by_return_id(db):
    dispatcher, _ = run(ActionRefundStatus(), slots=verified("10007", "dan@example.com"))
    assert "24.00" in texts(dispatcher) and "was issued on" in texts(dispatcher)
    dispatcher, _ = run(ActionRefundStatus(), slots=verified("10001", "alice@example.com"))
    assert "no refund on order 10001" in texts(dispatcher)


async def test_refund_form_accepts_a_return_id(db):
    with session_scope(db) as session:
        ret = session.scalars(select(Return).join(Return.line).where(Return.status == "received")).first()
        public_id, order_id, email = ret.public_id, ret.line.order_id, ret.line.order.customer.email
    _, slots = await validate(ValidateRefundForm(), order_id=public_id.lower(), order_email=email)
    assert slots["verified_order_id"] == order_id and slots["order_id"] == order_id


async def test_cancel_asks_for_confirmation_first(db):
    _, slots = await validate(ValidateCancelForm(), order_id="10003", order_email="bob@example.com")
    assert slots["requested_slot"] == "cancel_confirmed"
    dispatcher, _ = run(ActionAskCancelConfirmed(), slots=verified("10003", "bob@example.com"))
    assert "cancel order 10003" in texts(dispatcher) and "54.00" in texts(dispatcher)
    assert [b["payload"] for b in dispatcher.messages[0]["buttons"]] == ["/affirm", "/deny"]
    with session_scope(db) as session:
        assert session.get(Order, "10003").status == "pending"


def test_cancel_yes_cancels_and_no_keeps(db):
    dispatcher, _ = run(ActionSubmitCancel(), slots=verified("10003", "bob@example.com", cancel_confirmed=False))
    assert "left order 10003 as it is" in texts(dispatcher)
    with session_scope(db) as session:
        assert session.get(Order, "10003").status == "pending"
    dispatcher, events = run(ActionSubmitCancel(), slots=verified("10003", "bob@example.com", cancel_confirmed=True))
    assert "Order 10003 is cancelled" in texts(dispatcher) and events["cancel_confirmed"] is None
    with session_scope(db) as session:
        assert session.get(Order, "10003").status == "cancelled"


async def test_shipped_order_is_refused_and_a_return_offered(db):
    _, slots = await validate(ValidateCancelForm(), order_id="10002", order_email="alice@example.com")
    assert slots["requested_slot"] is None
    dispatcher, events = run(ActionSubmitCancel(), slots=verified("10002", "alice@example.com"))
    assert "can't be cancelled" in texts(dispatcher) and "start a return" in texts(dispatcher)
    assert events["pending_offer"] == "return"
    with session_scope(db) as session:
        assert session.get(Order, "10002").status == "shipped"


def test_policy_answers_come_from_the_knowledge_file(db):
    dispatcher, _ = run(ActionAnswerPolicy(), intent="policy_returns")
    assert "30 days of delivery" in texts(dispatcher)
    dispatcher, _ = run(ActionAnswerPolicy(), intent="policy_payment")
    assert "PayPal" in texts(dispatcher)


def test_handoff_creates_ticket_with_transcript(db):
    history = [user_event("where is my parcel", "order_status"), bot_event("What's your order number?")]
    dispatcher, events = run(ActionHandoff(), history=history, intent="human_handoff", text="let me talk to a human",
                             sender_id="conv-42")
    assert "ticket H-" in texts(dispatcher) and "working day" in texts(dispatcher)
    with session_scope(db) as session:
        ticket = session.scalars(select(HandoffTicket)).one()
    assert ticket.conversation_id == "conv-42" and ticket.reason == "customer asked for a person"
    assert "customer: where is my parcel" in ticket.transcript
    assert "customer: let me talk to a human" in ticket.transcript
    assert events["pending_offer"] is None


def test_handoff_after_failed_verification_records_why(db):
    run(ActionHandoff(), slots={"handoff_reason": "could not verify order number and email"}, intent="affirm")
    with session_scope(db) as session:
        assert session.scalars(select(HandoffTicket)).one().reason == "could not verify order number and email"


@pytest.fixture
def no_knowledge(monkeypatch):
    """The knowledge base knows nothing (the generator has its own tests, tests/generator/)."""

    class Service:
        async def reply(self, request):
            return Reply(None, "none")

    monkeypatch.setattr("actions.generate.get_service", Service)


def test_second_misunderstanding_offers_a_person(db, no_knowledge):
    first, events = run(ActionFallback(), intent="nlu_fallback", text="blorp")
    assert "didn't understand" in texts(first) and "pending_offer" not in events
    history = [user_event("blorp", "nlu_fallback"), bot_event("Sorry")]
    second, events = run(ActionFallback(), history=history, intent="out_of_scope", text="what's the weather")
    assert "pass this to a person" in texts(second) and events["pending_offer"] == "handoff"
    third, _ = run(ActionDeclineOffer(), slots={"pending_offer": "handoff"}, intent="deny")
    assert third.messages[0]["response"] == "utter_anything_else"


def test_stop_forgets_unverified_answers_but_keeps_verification(db):
    _, events = run(ActionStopForm(), slots={"order_id": "10001", "return_reason": "damaged"})
    assert events["order_id"] is None and events["return_reason"] is None
    _, events = run(ActionStopForm(), slots=verified("10001", "alice@example.com", return_item="MUG-01"))
    assert "order_id" not in events and events["return_item"] is None


def test_ask_actions_use_the_catalogue(db):
    dispatcher, _ = run(ActionAskOrderId())
    assert "order number" in texts(dispatcher)


def test_database_outage_gets_an_apology_not_a_crash(db, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("select 1", {}, Exception("connection refused"))

    monkeypatch.setattr("actions.order_status.session_scope", broken)
    dispatcher, _ = run(ActionOrderStatus(), slots=verified("10002", "alice@example.com"))
    assert "something went wrong on our side" in texts(dispatcher)
