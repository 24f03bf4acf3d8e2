"""The action server's side: action_generate_reply, the fallback answering from the knowledge base, and what the
tracker gives the generator (recent turns; order facts only once verified)."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.generate import ActionGenerateReply, conversation_history, verified_facts
from actions.handoff import ActionFallback, consecutive_not_understood
from generator.service import Reply
from shop.models import Order
from shop.orders import TODAY, keyed_order_facts, order_fact_questions
from tests.support import bot_event, make_tracker, slot_events, user_event


class FakeService:
    """Answers every message with `text` (None: the knowledge base has nothing), after `delay_s`."""

    def __init__(self, text=None, delay_s=0.0, error=None):
        self.text, self.delay_s, self.error = text, delay_s, error
        self.requests = []

    async def reply(self, request):
        self.requests.append(request)
        await asyncio.sleep(self.delay_s)
        if self.error:
            raise self.error
        if self.text is None:
            return Reply(None, "none", 0.2)
        text = self.text(request) if callable(self.text) else self.text
        return Reply(text, "generated", 0.9, "faq.warranty")


@pytest.fixture
def service(monkeypatch):
    def install(**kwargs) -> FakeService:
        fake = FakeService(**kwargs)
        monkeypatch.setattr("actions.generate.get_service", lambda: fake)
        return fake

    return install


async def run(action, **tracker_args):
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, make_tracker(**tracker_args), {})
    return dispatcher, slot_events(events)


async def test_a_grounded_reply_is_sent_with_its_origin_in_the_metadata(db, service):
    service(text="Headphones have a 2-year warranty.")
    dispatcher, events = await run(ActionGenerateReply(), intent="ask_question", text="warranty on headphones?")
    message = dispatcher.messages[0]
    assert message["text"] == "Headphones have a 2-year warranty." and events == {}
    assert message["knowledge_answer"] is True and message["generator"]["passage"] == "faq.warranty"


async def test_nothing_known_offers_a_person_outside_a_form(db, service):
    service(text=None)
    dispatcher, events = await run(ActionGenerateReply(), intent="ask_question", text="do you sell cars?")
    assert "don't have an answer" in dispatcher.messages[0]["text"] and dispatcher.messages[0]["buttons"]
    assert events == {"pending_offer": "handoff", "handoff_reason": "a question the assistant could not answer"}


async def test_nothing_known_inside_a_form_only_hints_at_a_person(db, service):
    service(text=None)
    dispatcher, events = await run(ActionGenerateReply(), intent="ask_question", text="do you sell cars?",
                                   active_loop="return_form")
    assert 'say "agent"' in dispatcher.messages[0]["text"] and events == {}


async def test_a_broken_generator_still_answers(db, service):
    service(error=RuntimeError("model file missing"))
    dispatcher, events = await run(ActionGenerateReply(), intent="ask_question", text="warranty?")
    assert "don't have an answer" in dispatcher.messages[0]["text"] and events["pending_offer"] == "handoff"


async def test_concurrent_turns_each_get_their_own_reply(db, service):
    service(text=lambda request: f"Answer to {request.message}.", delay_s=0.1)

    async def ask(text):
        dispatcher, _ = await run(ActionGenerateReply(), intent="ask_question", text=text, sender_id=text)
        return dispatcher.messages[0]["text"]

    answers = await asyncio.gather(*(ask(f"question {n}") for n in range(5)))
    assert answers == [f"Answer to question {n}." for n in range(5)]


async def test_the_fallback_answers_from_the_knowledge_base_with_the_stricter_threshold(db, service):
    fake = service(text="Store credit does not expire.")
    dispatcher, events = await run(ActionFallback(), intent="nlu_fallback", text="does my credit run out")
    assert dispatcher.messages[0]["text"] == "Store credit does not expire." and events == {}
    assert fake.requests[0].min_score > 0.5


async def test_the_fallback_does_not_ask_the_knowledge_base_for_messages_nlu_placed(db, service):
    fake = service(text="Store credit does not expire.")
    dispatcher, _ = await run(ActionFallback(), intent="inform", text="blue")
    assert fake.requests == [] and "didn't understand" in dispatcher.messages[0]["text"]


async def test_a_person_is_still_offered_after_repeated_misunderstanding(db, service):
    service(text=None)
    history = [user_event("blorp", "nlu_fallback"), bot_event("Sorry, I didn't understand that.")]
    dispatcher, events = await run(ActionFallback(), history=history, intent="out_of_scope", text="qwerty")
    assert "pass this to a person" in dispatcher.messages[0]["text"] and events["pending_offer"] == "handoff"


def test_a_message_answered_from_the_knowledge_base_counts_as_understood():
    answered = {**bot_event("Store credit does not expire."), "metadata": {"knowledge_answer": True}}
    history = [user_event("blorp", "nlu_fallback"), bot_event("Sorry"),
               user_event("does credit run out", "nlu_fallback"), answered]
    assert consecutive_not_understood(make_tracker(history=history, intent="nlu_fallback", text="qwerty")) == 1
    unanswered = history[:3] + [bot_event("Sorry")]
    assert consecutive_not_understood(make_tracker(history=unanswered, intent="nlu_fallback", text="qwerty")) == 3


def test_history_is_the_turns_before_the_latest_message():
    history = [user_event("hi", "greet"), bot_event("Hello!"), user_event("where is my order", "order_status"),
               bot_event("What's your order number?")]
    tracker = make_tracker(history=history, intent="ask_question", text="do you gift wrap?")
    assert conversation_history(tracker, 3) == [("assistant", "Hello!"), ("customer", "where is my order"),
                                                ("assistant", "What's your order number?")]
    assert conversation_history(tracker, 0) == []


def test_order_facts_come_only_from_a_verified_order(db):
    verified = {"order_id": "10002", "order_email": "alice@example.com", "verified_order_id": "10002",
                "verified_email": "alice@example.com"}
    keyed = verified_facts(make_tracker(slots=verified, intent="ask_question", text="is it late?"), date.today())
    facts = [fact for _, fact in keyed]
    assert ("items", "Order 10002 contains 1 x Desk lamp.") in keyed
    assert any("Order 10002 has already shipped" in fact and "DHL" in fact for fact in facts)
    assert any(fact.startswith("The tracking number of order 10002 is ") for fact in facts)
    unverified = make_tracker(slots={"order_id": "10002", "order_email": "alice@example.com"})
    assert verified_facts(unverified, date.today()) == []


def test_every_kind_of_order_fact_has_questions_to_be_found_by(db):
    """A fact without questions is only found by its own wording, which customers rarely use ("tracking no.?")."""
    with Session(db, future=True) as session:
        kinds = {kind for order in session.scalars(select(Order)) for kind, _ in keyed_order_facts(order, date.today())}
    assert {"items", "placed", "cancelled", "not_shipped", "shipped", "tracking", "delivered", "expected"} <= kinds
    questions = order_fact_questions()
    assert all(questions.get(kind) for kind in kinds - {TODAY}), questions
