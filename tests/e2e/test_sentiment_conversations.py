"""Sentiment end to end: the parse result, and whole conversations over REST in which the NLU's sentiment reaches
the action server (acknowledgement, the offer of a person, the satisfaction question) and the database."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from shop.models import ConversationSentiment, HandoffTicket, SatisfactionFeedback

pytestmark = pytest.mark.e2e

SORRY = "I'm sorry about this"
OFFER = "pass the conversation on"


def test_every_parse_has_a_sentiment(servers):
    for text, label in [("This is the worst service ever, I'm furious!", "negative"),
                        ("What payment methods do you accept?", "neutral"),
                        ("Thank you so much, you've been wonderful!", "positive")]:
        parsed = requests.post(f"{servers.rasa_url}/model/parse", json={"text": text}, timeout=60).json()
        assert parsed["sentiment"]["label"] == label, parsed
        assert set(parsed["sentiment"]["scores"]) == {"negative", "neutral", "positive"}
        assert {"entity": "sentiment", "value": label}.items() <= parsed["entities"][-1].items()


def test_upset_customer_is_acknowledged_offered_a_person_and_the_ticket_has_the_trail(servers):
    first = servers.say("upset-1", "I'm really annoyed, what payment methods do you even accept?")
    assert SORRY in first and OFFER not in first
    second = servers.say("upset-1", "This is ridiculous, how long does shipping even take?")
    assert second.index(SORRY) < second.index(OFFER)
    assert "ticket H-" in servers.say("upset-1", "yes")
    with Session(servers.engine) as session:
        ticket = session.scalars(select(HandoffTicket).where(HandoffTicket.conversation_id == "upset-1")).one()
    assert ticket.reason.startswith("the customer")
    assert ticket.transcript.startswith("customer sentiment, oldest first: negative > negative")
    assert "customer [negative" in ticket.transcript


def test_happy_ending_gets_one_satisfaction_question_and_the_answer_is_stored(servers):
    servers.say("happy-1", "Thank you so much, that was really helpful!")
    goodbye = servers.say("happy-1", "bye")
    assert "Goodbye" in goodbye and "from 1" in goodbye
    assert "Thank you, that helps" in servers.say("happy-1", "5")
    with Session(servers.engine) as session:
        feedback = session.scalars(select(SatisfactionFeedback).where(
            SatisfactionFeedback.conversation_id == "happy-1")).one()
        turns = session.scalars(select(ConversationSentiment).where(
            ConversationSentiment.conversation_id == "happy-1").order_by(ConversationSentiment.turn)).all()
    assert feedback.rating == 5
    assert [turn.label for turn in turns][0] == "positive" and len(turns) == 3
    assert "from 1" not in servers.say("happy-1", "bye")  # once per conversation
