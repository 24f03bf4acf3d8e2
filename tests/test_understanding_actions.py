"""Asking instead of refusing, openers without a request, and one text per turn, through rasa-sdk Trackers."""

from __future__ import annotations

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.base import drop_repeats
from actions.forms import ActionAskOrderEmail
from actions.handoff import ActionFallback
from actions.messages import render
from actions.order_status import ActionOrderStatus
from actions.session import ActionSessionStart
from actions.understanding import ActionAskWhatToDo
from shop.settings import get_settings
from tests.support import bot_event, make_tracker, user_event
from tests.test_actions import run

UNSURE = {"refund_status": 0.45, "policy_refunds": 0.35, "greet": 0.12, "return_item": 0.05, "out_of_scope": 0.03}


def payloads(dispatcher: CollectingDispatcher) -> list:
    return [button["payload"] for message in dispatcher.messages for button in message.get("buttons", [])]


def test_an_unsure_message_gets_did_you_mean_with_the_plausible_skills(db):
    dispatcher, slots = run(ActionFallback(), intent="nlu_fallback", text="my money for the shoes", ranking=UNSURE)
    assert dispatcher.messages[0]["text"] == render("clarify")
    assert payloads(dispatcher) == ["/refund_status", "/policy_refunds"]  # greet is no skill; 0.05 too unlikely
    assert dispatcher.messages[0]["clarification"] is True and slots == {}


def test_a_guess_below_the_clarify_threshold_is_declined(db):
    dispatcher, _ = run(ActionFallback(), intent="nlu_fallback", text="blue whales",
                        ranking={"out_of_scope": 0.5, "order_status": 0.3, "greet": 0.2})
    said = dispatcher.messages[0]["text"]
    assert "Did you mean" not in said and "I didn't understand" in said


def test_a_second_unclear_message_after_the_question_offers_a_person(db):
    history = [user_event("my money for the shoes", "nlu_fallback", ranking=UNSURE),
               bot_event(render("clarify"), clarification=True)]
    dispatcher, slots = run(ActionFallback(), intent="nlu_fallback", text="the money thing", ranking=UNSURE,
                            history=history)
    assert "pass this to a person" in dispatcher.messages[0]["text"] and "/refund_status" not in payloads(dispatcher)
    assert slots["pending_offer"] == "handoff"


def test_out_of_scope_is_declined_without_a_question(db):
    dispatcher, _ = run(ActionFallback(), intent="out_of_scope", text="tell me a joke", ranking=UNSURE)
    assert dispatcher.messages[0]["text"] == render("out_of_scope")


@pytest.mark.parametrize("entities, expected", [
    ({"order_id": "NW-2024-00017"}, "Thanks, I have order NW-2024-00017"),
    ({"email": "dan@example.com"}, "I've noted your email address"),
    ({}, "What would you like to do about it"),
])
def test_a_reference_alone_asks_what_to_do_with_the_order_skills(db, entities, expected):
    dispatcher, _ = run(ActionAskWhatToDo(), text="x", entities=entities)
    assert expected in dispatcher.messages[0]["text"]
    assert payloads(dispatcher) == ["/order_status", "/return_item", "/refund_status", "/cancel_order"]


def test_a_turn_never_repeats_a_text():
    dispatcher = CollectingDispatcher()
    for text in ("already said", "new", "new", "also new"):
        dispatcher.utter_message(text=text)
    tracker = make_tracker(text="hello", history=[])
    tracker.events.append(bot_event("already said"))
    drop_repeats(dispatcher, tracker)
    assert [m["text"] for m in dispatcher.messages] == ["new", "also new"]


def test_a_calm_request_is_not_acknowledged_as_frustration(db):
    dispatcher, _ = run(ActionOrderStatus(), text="please cancel, I found it cheaper", frustrated=False,
                        slots={"order_id": "10002", "order_email": "alice@example.com",
                               "verified_order_id": "10002", "verified_email": "alice@example.com"})
    assert render("acknowledge_upset") not in [m["text"] for m in dispatcher.messages]


def test_a_second_frustrated_message_inside_a_form_offers_a_person_as_a_button(db):
    history = [user_event("WHERE IS MY ORDER, third time asking", "order_status", frustrated=True)]
    dispatcher, slots = run(ActionAskOrderEmail(), text="10002!!! hurry up", frustrated=True, history=history,
                            active_loop="order_status_form")
    said = [m["text"] for m in dispatcher.messages]
    assert said[0] == render("acknowledge_upset") and render("offer_handoff_upset_in_form") in said
    assert "/human_handoff" in payloads(dispatcher) and "pending_offer" not in slots
    assert slots["handoff_reason"] == "the customer was upset in two messages in a row"


def test_an_unclear_message_with_an_order_number_asks_what_to_do_with_that_order(db):
    dispatcher, _ = run(ActionFallback(), intent="nlu_fallback", text="cancle order 10023",
                        ranking={"inform": 0.57, "cancel_order": 0.37}, entities={"order_id": "10023"})
    assert "Thanks, I have order 10023" in dispatcher.messages[0]["text"] and "/cancel_order" in payloads(dispatcher)


def test_one_question_per_answer_no_offer_of_a_person_beside_did_you_mean(db):
    history = [user_event("THIS IS RIDICULOUS", "order_status", frustrated=True)]
    dispatcher, slots = run(ActionFallback(), intent="nlu_fallback", text="useless!! my money??", ranking=UNSURE,
                            frustrated=True, history=history)
    assert [m["text"] for m in dispatcher.messages] == [render("acknowledge_upset"), render("clarify")]
    assert "pending_offer" not in slots


def test_every_conversation_starts_with_the_shops_name_for_the_greeting(db):
    dispatcher, slots = run(ActionSessionStart(), text="")
    assert slots == {"shop_name": get_settings().shop_name} and dispatcher.messages == []
