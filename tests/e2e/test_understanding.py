"""Understanding customers as they write, end to end over REST, on the demo shop and on the alphanumeric shop:
order numbers however they are typed, openers without a request, "Did you mean ...?" instead of a refusal."""

from __future__ import annotations

from typing import Dict, List

import pytest
import yaml

from actions.messages import catalogue
from shop.settings import PROJECT_ROOT, get_settings

pytestmark = pytest.mark.e2e


def buttons(replies: List[Dict]) -> List[Dict]:
    return [button for reply in replies for button in reply.get("buttons", [])]


def text(replies: List[Dict]) -> str:
    return "\n".join(reply.get("text", "") for reply in replies)


@pytest.mark.parametrize("form", ["as stored", "lower case with spaces", "no dashes", "after order no.", "after #"])
def test_the_shops_order_number_is_understood_however_it_is_typed(shop, form):
    stored = shop.number("10002")
    typed = {"as stored": stored, "lower case with spaces": shop.typed("10002"),
             "no dashes": stored.replace("-", "").lower(), "after order no.": f"order no. {stored}",
             "after #": f"#{stored}"}[form]
    sender = f"typed-{form}"
    shop.say(sender, "where is my order?")
    assert "email" in shop.say(sender, typed)
    assert f"Order {stored} is shipped" in shop.say(sender, "alice@example.com")


def test_an_order_number_in_a_sentence_is_found_and_prices_or_phone_numbers_are_not(shop):
    stored = shop.number("10002")
    entities = shop.parse(f"hi, my order {shop.typed('10002')} cost $49.99, call me on +44 20 7946 0958")["entities"]
    assert [(e["entity"], e["value"]) for e in entities if e["entity"] == "order_id"] == [("order_id", stored)]
    assert not [e for e in shop.parse("it cost 10001.50 on 2024-05-01")["entities"] if e["entity"] == "order_id"]


def test_an_order_number_alone_asks_what_to_do_and_the_skill_keeps_it(shop):
    replies = shop.send("opener-number", shop.typed("10002"))
    assert f"order {shop.number('10002')}" in text(replies) and "What would you like to do" in text(replies)
    assert "/order_status" in [button["payload"] for button in buttons(replies)]
    assert "email" in shop.say("opener-number", "/order_status")  # the number is not asked again
    assert f"Order {shop.number('10002')} is shipped" in shop.say("opener-number", "alice@example.com")


def test_an_email_alone_asks_what_to_do_and_the_skill_keeps_it(shop):
    replies = shop.send("opener-email", "bob@example.com")
    assert "What can I do for you" in text(replies) and "/cancel_order" in [b["payload"] for b in buttons(replies)]
    asked = shop.say("opener-email", "/cancel_order")
    assert "order number" in asked and shop.profile.example in asked
    assert f"Do you want me to cancel order {shop.number('10003')}" in shop.say("opener-email", shop.typed("10003"))


def test_an_unknown_number_then_an_email_is_answered_once(shop):
    shop.say("unknown-then-email", "track my order")
    shop.send("unknown-then-email", shop.typed("19999"))  # send() fails on any turn with a repeated text
    reply = shop.send("unknown-then-email", "bob@example.com")
    assert "couldn't find an order" in text(reply)


UNSURE_CANDIDATES = ["refund", "return", "my money", "the parcel", "about my stuff", "delivery", "order problem",
                     "send it", "the payment thing", "wrong", "not happy with the box", "charges", "the label",
                     "instead of", "money back for the shoes", "hours", "issue with a package", "it never came back"]


def unsure_message(shop) -> tuple[str, List[str]]:
    """A message the classifier is unsure about but has plausible guesses for, found through /model/parse, and
    the skills it should offer."""
    nameable, policy = catalogue()["clarify"]["options"], get_settings().understanding
    for message in UNSURE_CANDIDATES:
        parsed = shop.parse(message)
        if parsed["intent"]["name"] != "nlu_fallback":
            continue
        ranking = [e for e in parsed["intent_ranking"]
                   if e["name"] in nameable and e["confidence"] >= policy.option_min_confidence]
        if ranking and ranking[0]["confidence"] >= policy.clarify_min_confidence:
            return message, [e["name"] for e in ranking[:policy.max_options]]
    pytest.fail(f"none of {UNSURE_CANDIDATES} is an unsure message for this model: pick new candidates")


def test_an_unsure_message_gets_did_you_mean_with_its_best_guesses_as_buttons(shop):
    message, expected = unsure_message(shop)
    replies = shop.send("clarify-1", message)
    assert "Did you mean" in text(replies) and "Sorry, I didn't understand" not in text(replies)
    assert [button["payload"] for button in buttons(replies)] == [f"/{intent}" for intent in expected]
    chosen = buttons(replies)[0]["payload"]
    follow_up = shop.say("clarify-1", chosen)
    assert "Did you mean" not in follow_up and follow_up.strip()


def test_a_second_unclear_message_after_the_question_offers_a_person(shop):
    message, _ = unsure_message(shop)
    assert "Did you mean" in shop.say("clarify-2", message)
    second = shop.say("clarify-2", message)
    assert "pass this to a person" in second and "Did you mean" not in second
    assert "ticket H-" in shop.say("clarify-2", "yes please")


def test_the_greeting_names_the_shop_that_runs_the_bot(shop):
    config = shop.profile.config or PROJECT_ROOT / "shop.yml"
    name = yaml.safe_load(config.read_text())["shop_name"]
    assert f"I'm the {name} assistant" in shop.say("greeting-name", "hello")
