"""The adapter's tuning examples (generator/tuning/dataset.py): what the model learns to answer from must be what
the service gives it, and the answers must be right."""

from __future__ import annotations

import random
from datetime import date

import pytest

from generator.tuning.dataset import NUMBER, order_answer, order_examples, prompt_facts, synthetic_order
from shop.orders import TODAY, keyed_order_facts, order_fact_questions
from shop.settings import get_settings


@pytest.fixture(scope="module")
def examples(index):
    return order_examples(random.Random(0), "Shop", 60, index, 0.5, get_settings().returns)


@pytest.mark.parametrize("question,kind", [("what's the tracking number?", "tracking"),
                                           ("when will my order arrive?", "expected"),
                                           ("can I still return it?", "return_window")])
def test_an_order_example_gets_the_facts_the_service_would_give_the_closest_last(index, question, kind):
    today = date(2026, 6, 10)
    order = synthetic_order(random.Random(1), today, "shipped")
    keyed = keyed_order_facts(order, today, get_settings().returns)
    given, _ = prompt_facts(index, question, keyed, order_fact_questions(), 2)
    assert given[0] == dict(keyed)[TODAY] and len(given) == 3
    assert given[-1] == dict(keyed)[kind]


def test_every_order_example_has_its_prompt_and_an_answer_from_it(examples):
    assert len(examples) == 60 and {example.kind for example in examples} == {"order"}
    assert all(example.facts[0].startswith("Today is") and len(example.facts) == 3 for example in examples)


def test_an_order_answer_only_says_figures_its_prompt_holds(examples):
    for example in examples:
        given = " ".join(example.facts)
        assert all(figure in given for figure in NUMBER.findall(example.answer)), example


@pytest.mark.parametrize("question,word", [("can I still return it?", "Yes"), ("is it too late to return it", "No")])
def test_a_yes_or_no_about_returning_follows_the_question(question, word):
    today = date(2026, 6, 10)
    order = synthetic_order(random.Random(3), today, "delivered")
    facts = dict(keyed_order_facts(order, today, get_settings().returns))
    assert "can be returned until" in facts["return_window"]
    assert order_answer("return", question, order, facts).startswith(f"{word}, order {order.id} can be returned")


def test_an_order_past_its_window_is_not_returnable_and_a_pending_one_is_cancellable():
    today = date(2026, 6, 10)
    rng = random.Random(5)
    late = synthetic_order(rng, today, "delivered")
    late.delivered_at = late.delivered_at.replace(year=2025)
    facts = dict(keyed_order_facts(late, today, get_settings().returns))
    assert order_answer("return", "can I still return it?", late, facts).startswith("No, the return window")
    pending = synthetic_order(rng, today, "pending")
    facts = dict(keyed_order_facts(pending, today, get_settings().returns))
    assert TODAY in facts
    assert order_answer("change", "can i still cancel it?", pending, facts) == \
        f"Yes, order {pending.id} has not shipped yet, so it can still be cancelled."
