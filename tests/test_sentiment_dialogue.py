"""The dialogue's use of sentiment (actions/sentiment.py, actions/satisfaction.py): acknowledgement, escalation to a
person, the satisfaction question, and the stored trail, through rasa-sdk trackers against a real database."""

from __future__ import annotations

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.forms import ActionAskOrderId
from actions.handoff import ActionFallback, ActionHandoff
from actions.order_status import ActionOrderStatus, ValidateOrderStatusForm
from actions.policy import ActionAnswerPolicy
from actions.satisfaction import ActionAskSatisfaction, ActionSaveSatisfaction
from actions.sentiment import UPSET_COMPLAINT, UPSET_TWICE
from shop.db import session_scope
from shop.feedback import parse_rating
from shop.models import ConversationSentiment, HandoffTicket, SatisfactionFeedback
from tests.support import bot_event, feeling, make_tracker, texts, user_event
from tests.test_actions import DOMAIN, run, verified

SORRY = "I'm sorry about this"
OFFER = "pass the conversation on"


def test_clearly_negative_message_is_acknowledged_before_the_answer(db):
    dispatcher, events = run(ActionAnswerPolicy(), intent="policy_returns", text="your returns are a mess",
                             sentiment=feeling("negative", 0.97))
    assert SORRY in dispatcher.messages[0]["text"] and "30 days of delivery" in dispatcher.messages[1]["text"]
    assert "pending_offer" not in events  # one negative message without a complaint: no offer yet


@pytest.mark.parametrize("sentiment", [feeling("negative", 0.6), feeling("neutral"), feeling("positive"), None])
def test_other_messages_are_answered_without_acknowledgement(db, sentiment):
    dispatcher, _ = run(ActionAnswerPolicy(), intent="policy_returns", text="returns?", sentiment=sentiment)
    assert SORRY not in texts(dispatcher) and len(dispatcher.messages) == 1


def test_one_acknowledgement_per_message_however_many_actions_answer_it(db):
    # The policy answer inside a form already acknowledged this message; the form's question must not again.
    angry = "this is taking forever"
    history = [user_event("where is my order", "order_status")]
    tracker_args = dict(history=history, text=angry, intent="policy_shipping", sentiment=feeling("negative"),
                        active_loop="order_status_form")
    first, _ = run(ActionAnswerPolicy(), **tracker_args)
    assert SORRY in texts(first)
    said = [bot_event(message["text"]) for message in first.messages]
    tracker = make_tracker(**tracker_args)
    tracker.events.extend(said)
    dispatcher = CollectingDispatcher()
    ActionAskOrderId().run(dispatcher, tracker, DOMAIN)
    assert SORRY not in texts(dispatcher) and "order number" in texts(dispatcher)


async def test_form_validation_acknowledges_before_complaining_about_input(db):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(new_slots={"order_id": "my stupid order"}, text="my stupid order, are you kidding me",
                           sentiment=feeling("negative"), active_loop="order_status_form")
    await ValidateOrderStatusForm().run(dispatcher, tracker, DOMAIN)
    assert SORRY in dispatcher.messages[0]["text"] and "order number" in dispatcher.messages[1]["text"]


def test_negative_complaint_offers_a_person_after_the_answer(db):
    dispatcher, events = run(ActionAnswerPolicy(), intent="policy_shipping", sentiment=feeling("negative"),
                             text="Your delivery times are ridiculous, how long does shipping take?")
    said = [message["text"] for message in dispatcher.messages]
    assert SORRY in said[0] and "business days" in said[1] and OFFER in said[2]
    assert events == {"pending_offer": "handoff", "handoff_reason": UPSET_COMPLAINT}


def test_complaint_words_without_negative_sentiment_offer_nothing(db):
    dispatcher, events = run(ActionAnswerPolicy(), intent="policy_returns", sentiment=feeling("neutral"),
                             text="how do I complain about a product")
    assert OFFER not in texts(dispatcher) and events == {}


def test_two_negative_messages_in_a_row_offer_a_person(db):
    history = [user_event("your site is broken", "out_of_scope", feeling("negative")), bot_event("Sorry")]
    dispatcher, events = run(ActionAnswerPolicy(), history=history, intent="policy_payment",
                             text="and I can't even pay, great", sentiment=feeling("negative", 0.9))
    assert OFFER in texts(dispatcher)
    assert events == {"pending_offer": "handoff", "handoff_reason": UPSET_TWICE}


def test_a_calm_message_between_two_negative_ones_breaks_the_row(db):
    history = [user_event("your site is broken", "out_of_scope", feeling("negative")),
               user_event("ok, how do I pay", "policy_payment", feeling("neutral"))]
    _, events = run(ActionAnswerPolicy(), history=history, intent="policy_payment", text="still not working",
                    sentiment=feeling("negative"))
    assert "pending_offer" not in events


def test_inside_a_form_the_offer_is_a_button_not_a_question_and_never_twice(db):
    history = [user_event("this is bad", "order_status", feeling("negative"))]
    dispatcher, events = run(ActionAnswerPolicy(), history=history, intent="policy_shipping", text="terrible service",
                             sentiment=feeling("negative"), active_loop="order_status_form")
    # a yes or no now would answer the form's question: no pending offer, a button instead
    assert events == {"handoff_reason": UPSET_TWICE} and "Would you like" not in texts(dispatcher)
    assert {"title": "Talk to a person", "payload": "/human_handoff"} in dispatcher.messages[-1]["buttons"]
    offered_before = [*history, {"event": "slot", "name": "handoff_reason", "value": UPSET_TWICE}]
    _, events = run(ActionAnswerPolicy(), history=offered_before, intent="policy_shipping", text="still terrible",
                    sentiment=feeling("negative"))
    assert events == {}


def test_an_offer_the_action_makes_itself_wins(db):
    # Locked out of verification: the skill offers a person with its own reason; no second offer.
    history = [user_event("wrong again??", "inform", feeling("negative"))]
    dispatcher, events = run(ActionOrderStatus(), history=history, slots={"verification_failures": 3},
                             text="this is useless", sentiment=feeling("negative"))
    assert events["handoff_reason"] == "could not verify order number and email"
    assert texts(dispatcher).count("Would you like") == 1


def test_fallback_offer_is_not_doubled(db):
    history = [user_event("blorp", "nlu_fallback", feeling("negative")), bot_event("Sorry")]
    dispatcher, events = run(ActionFallback(), history=history, intent="nlu_fallback", text="argh useless",
                             sentiment=feeling("negative"))
    assert events["handoff_reason"] == "the assistant did not understand" and OFFER not in texts(dispatcher)


def test_handoff_ticket_carries_the_sentiment_trail(db):
    history = [user_event("where is my parcel", "order_status", feeling("neutral", 0.88)), bot_event("Order number?"),
               user_event("this is ridiculous", "out_of_scope", feeling("negative", 0.97)), bot_event("Sorry")]
    run(ActionHandoff(), history=history, intent="affirm", text="yes", sentiment=feeling("neutral", 0.7),
        slots={"handoff_reason": UPSET_COMPLAINT}, sender_id="upset-1")
    with session_scope(db) as session:
        ticket = session.scalars(select(HandoffTicket)).one()
    assert ticket.reason == UPSET_COMPLAINT
    assert ticket.transcript.splitlines()[0] == "customer sentiment, oldest first: neutral > negative > neutral"
    assert "customer [negative 0.97]: this is ridiculous" in ticket.transcript
    assert "customer [neutral 0.88]: where is my parcel" in ticket.transcript


def test_every_turn_is_stored_once(db):
    history = [user_event("hi", "greet", feeling("neutral", 0.9)), bot_event("Hi!"),
               user_event("love the mug!", "thank", feeling("positive", 0.99))]
    for _ in range(2):  # the action server sees the same history again at each action
        run(ActionAnswerPolicy(), history=history, intent="policy_returns", text="how do returns work",
            sentiment=feeling("neutral", 0.8), sender_id="trail-1")
    with session_scope(db) as session:
        rows = session.scalars(select(ConversationSentiment).order_by(ConversationSentiment.turn)).all()
        assert [(r.conversation_id, r.turn, r.label) for r in rows] == [
            ("trail-1", 1, "neutral"), ("trail-1", 2, "positive"), ("trail-1", 3, "neutral")]
        assert rows[1].positive == 0.99 and rows[1].intent == "thank"


def happy_history():
    return [user_event("thanks, that was great!", "thank", feeling("positive")), bot_event("You're welcome!")]


def test_happy_ending_gets_one_satisfaction_question(db):
    dispatcher, events = run(ActionAskSatisfaction(), history=happy_history(), intent="goodbye", text="bye",
                             sentiment=feeling("neutral"))
    assert "from 1" in texts(dispatcher) and [b["title"] for b in dispatcher.messages[0]["buttons"]] == list("12345")
    assert events == {"pending_offer": "satisfaction"}
    asked = [*happy_history(), {"event": "slot", "name": "pending_offer", "value": "satisfaction"}]
    dispatcher, events = run(ActionAskSatisfaction(), history=asked, intent="goodbye", text="bye!",
                             sentiment=feeling("positive"))
    assert dispatcher.messages == [] and events == {}


@pytest.mark.parametrize("history, sentiment", [
    ([], feeling("neutral")),  # nothing positive
    ([user_event("meh", "inform", feeling("negative"))], feeling("positive")),  # upset just before
    ([], None),  # not analysed
])
def test_no_satisfaction_question_without_a_happy_ending(db, history, sentiment):
    dispatcher, events = run(ActionAskSatisfaction(), history=history, intent="goodbye", text="bye",
                             sentiment=sentiment)
    assert dispatcher.messages == [] and events == {}


def test_satisfaction_answer_is_stored(db):
    dispatcher, events = run(ActionSaveSatisfaction(), intent="inform", text="4/5, quick and friendly",
                             sentiment=feeling("positive"), sender_id="happy-1",
                             slots={"pending_offer": "satisfaction"})
    assert "Thank you" in texts(dispatcher) and events == {"pending_offer": None}
    with session_scope(db) as session:
        feedback = session.scalars(select(SatisfactionFeedback)).one()
    assert (feedback.conversation_id, feedback.rating, feedback.answer, feedback.answer_sentiment) == (
        "happy-1", 4, "4/5, quick and friendly", "positive")


@pytest.mark.parametrize(("answer", "rating"), [
    ("5", 5), ("4/5", 4), ("3 out of 5", 3), ("Five!", 5), ("two", 2), ("order 10002 was fine", None),
    ("10 out of 10", None), ("4.5", None), ("great", None), ("", None)])
def test_rating_in_the_answer(answer, rating):
    assert parse_rating(answer) == rating


def test_database_outage_while_recording_still_answers(db, monkeypatch):
    from sqlalchemy.exc import OperationalError

    def broken(*args, **kwargs):
        raise OperationalError("select 1", {}, Exception("connection refused"))

    monkeypatch.setattr("actions.sentiment.session_scope", broken)
    dispatcher, _ = run(ActionAnswerPolicy(), intent="policy_payment", text="how can I pay",
                        sentiment=feeling("neutral"))
    assert "PayPal" in texts(dispatcher)


def test_verified_order_status_with_an_upset_customer(db):
    dispatcher, _ = run(ActionOrderStatus(), slots=verified("10002", "alice@example.com"), text="finally. where is it",
                        sentiment=feeling("negative", 0.85))
    assert SORRY in dispatcher.messages[0]["text"] and "Order 10002 is shipped" in dispatcher.messages[1]["text"]
