"""The simulator's reading of the bot's replies and its counting, without servers: every message of the catalogue and
the domain is recognised by its wording, and a scripted bot's replies add up as the report counts them."""

from __future__ import annotations

import random
import string
from typing import Dict, List

import pytest
import yaml

from actions.messages import catalogue
from analytics import UsageProblem
from analytics.simulate import (
    FREE_TEXT,
    SCENARIOS,
    Customer,
    ReplyNamer,
    plan,
    reason_category,
    simulate,
)
from shop.settings import PROJECT_ROOT


def filled(template: str) -> str:
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    return template.format(**{name: f"X{index}" for index, name in enumerate(sorted(fields))})


def test_every_catalogue_and_domain_message_is_recognised_by_its_wording():
    namer = ReplyNamer()
    messages = {name: entry["text"] for name, entry in catalogue().items()}
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text())
    messages.update({name: variants[0]["text"] for name, variants in domain["responses"].items()})
    for name, template in messages.items():
        assert namer.name(filled(template)) == name, template


def test_refund_sentences_and_answers_are_told_apart():
    namer = ReplyNamer()
    assert namer.name("The refund of 89.00 for the return R-2 (Small wool rug) to the original payment method is "
                      "being processed and usually reaches you within 5 business days.") == "refund_status"
    assert namer.name("Standard shipping takes 3-5 business days and costs 4.95.") == FREE_TEXT


def test_a_run_plays_every_scenario_once_before_drawing_by_weight():
    assert sorted(plan(len(SCENARIOS), random.Random(1))) == sorted(SCENARIOS)
    assert plan(40, random.Random(7)) == plan(40, random.Random(7))
    assert set(plan(40, random.Random(7))) == set(SCENARIOS)


def test_handoff_reasons_have_kinds():
    assert reason_category("customer asked for a person") == "asked"
    assert reason_category("the customer was upset in two messages in a row") == "upset"
    assert reason_category("could not verify order number and email") == "verification"


class FakeBot:
    """A bot that answers from a script of (expected message, replies): what the REST channel returns."""

    def __init__(self, script: List[tuple]) -> None:
        self.script = list(script)
        self.sent: List[str] = []

    def __call__(self, sender: str, message: str) -> List[Dict]:
        self.sent.append(message)
        _, replies = self.script.pop(0)
        return [{"recipient_id": sender, "text": text, **({"buttons": buttons} if buttons else {})}
                for text, buttons in replies]


def text(name: str, **values: str) -> str:
    template = catalogue()[name]["text"]
    return filled(template) if not values else template.format(**values)


def test_failed_verification_then_a_person_is_observed_as_the_report_counts_it():
    ask_id = (text("ask_order_id"), None)
    ask_email = (text("ask_order_email"), None)
    failed = (text("verification_failed"), None)
    bot = FakeBot([
        ("where is my order?", [ask_id]), ("10002", [ask_email]), ("wrong", [failed, ask_id]),
        ("10002", [ask_email]), ("wrong", [failed, ask_id]), ("10002", [ask_email]),
        ("wrong", [(text("verification_locked"), None)]), ("yes please", [(text("handoff_created"), None)]),
    ])
    customer = Customer(bot, ReplyNamer(), "s1", random.Random(1))
    customer.order, customer.emails = "10002", ["a@example.org", "b@example.org", "c@example.org"]
    customer.ask("order_status", "where is my order?")
    record = customer.observer.record()
    assert record["skills"] == {"order_status": {"started": True, "verified": False, "outcome": "refused",
                                                 "rule": "verification_locked"}}
    assert record["handoffs"] == ["verification"] and not record["contained"]
    assert record["messages"] == 8 == len(bot.sent)


def test_a_misunderstood_message_the_bot_asks_about_is_followed_to_its_skill():
    clarify = (catalogue()["clarify"]["text"], [{"title": "Cancel an order", "payload": "/cancel_order"}])
    bot = FakeBot([
        ("cancle ordr", [clarify]), ("/cancel_order", [(text("ask_order_id"), None)]),
        ("10002", [(text("ask_order_email"), None)]),
        ("alice@example.com", [(text("cancel_refused_already_shipped"), None)]),
        ("no thanks", [("Okay. Is there anything else I can help with?", None)]),
    ])
    customer = Customer(bot, ReplyNamer(), "s2", random.Random(2))
    customer.ask(None, "cancle ordr")
    record = customer.observer.record()
    assert bot.sent[1] == "/cancel_order"
    assert record["clarification_messages"] == 1 and record["fallback_messages"] == 0
    assert record["skills"] == {"cancel": {"started": True, "verified": True, "outcome": "refused",
                                           "rule": "cancel_refused_already_shipped"}}
    assert record["contained"]


def test_the_rating_counts_only_when_the_bot_thanked_for_it():
    bot = FakeBot([
        ("thanks", [("You're welcome! Anything else I can do for you?", None)]),
        ("bye", [("Goodbye, and thanks for shopping with us!", None), (text("ask_satisfaction"), None)]),
        ("rating", [(text("satisfaction_thanks"), None)]),
    ])
    customer = Customer(bot, ReplyNamer(), "s3", random.Random(3))
    customer.rng.choice = lambda options: options[0]  # "thank you so much ..."
    customer.close(happy=True)
    satisfaction = customer.observer.record()["satisfaction"]
    assert satisfaction["asked"] and satisfaction["saved"]
    assert satisfaction["answer"] == bot.sent[-1]


def test_an_unreachable_server_is_one_clear_problem():
    with pytest.raises(UsageProblem, match="cannot talk to Rasa at http://127.0.0.1:1"):
        simulate("http://127.0.0.1:1", 2, progress=lambda line: None, timeout_s=2)
