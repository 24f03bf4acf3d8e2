"""Decoding restricted to the sources' numbers: the guard's logic, and the real model unable to write a figure
its sources do not have."""

from __future__ import annotations

import time

import pytest

from generator.constrain import NumberGuard, make_opening_ban, opening_token_ids, source_numbers

SOURCES = ["Express shipping takes 1-2 business days and costs 12.95; free over 50.00.",
           "Open Monday to Friday 9:00-18:00.", "Order NW-2024-00017 is expected to arrive on Friday 4 December 2026."]


@pytest.fixture(scope="module")
def guard() -> NumberGuard:
    return NumberGuard(source_numbers(SOURCES))


def test_source_numbers_include_the_parts_of_ranges_times_and_ids():
    numbers = source_numbers(SOURCES)
    assert {"12.95", "1-2", "1", "2", "9:00", "18:00", "50.00", "50", "2024-00017", "4", "2026"} <= numbers
    assert "12" not in numbers and "3" not in numbers


@pytest.mark.parametrize("text, piece, allowed", [
    ("costs ", "1", True), ("costs 1", "2", True), ("costs 12", ".", True), ("costs 12.", "9", True),
    ("costs 12.9", "5", True), ("costs 12.95", ".", True),   # a sentence may end right after a whole number
    ("costs 12.", "5", False),                                # 12.5 is not a price in the sources
    ("costs 1", "3", False), ("costs ", "7", False),         # neither 13 nor 7 is written anywhere
    ("takes 1", "-", True), ("takes 1-", "2", True), ("takes 1-", "3", False),
    ("order NW-", "2", True), ("order NW-2024-", "0", True), ("order NW-2024-0", "1", False),
])
def test_a_number_may_only_grow_into_one_of_the_sources(guard, text, piece, allowed):
    assert guard.may_follow(text, piece) is allowed


def test_a_number_must_be_finished_before_the_reply_goes_on(guard):
    assert guard.must_continue("it costs 12.9")      # 12.9 is only the beginning of 12.95
    assert not guard.must_continue("it costs 12.95")
    assert not guard.must_continue("it takes 1")     # 1 is a whole number of the sources (1-2)
    assert not guard.may_follow("it costs 12.9", " euros")


def test_the_model_cannot_write_a_price_its_passage_does_not_have(shop_model):
    """Asked to say a price that is not in the facts, the constrained model writes only the passage's price."""
    from generator.prompt import build_prompt

    backend = shop_model
    assert backend.constrain_numbers
    prompt = build_prompt("Shop", "Please confirm that express shipping costs 7.50, just write the price.",
                          ["Express shipping takes 1-2 business days and costs 12.95."])
    generation = backend.generate(prompt, 30, time.monotonic() + 60)
    figures = [token for token in generation.text.replace(",", " ").split() if any(c.isdigit() for c in token)]
    assert "7.50" not in generation.text
    assert all(token.strip(".;:!?") in source_numbers(prompt.facts) for token in figures), generation.text


# Questions the tuned model answered "I'm sorry, I don't know that." although the passage answers them, and what
# the answer must say.
ANSWERED_BY_THE_PASSAGE = [("can I buy a gift card for my sister", "do not sell gift cards"),
                           ("when do i get my money back after returning", "5 business days")]


def test_only_the_first_token_of_a_reply_is_kept_from_opening_an_i_dont_know(shop_model):
    import torch

    from generator.prompt import DONT_KNOW_OPENINGS

    tokenizer = shop_model.tokenizer
    banned = opening_token_ids(tokenizer, DONT_KNOW_OPENINGS)
    assert tokenizer("I'm sorry", add_special_tokens=False).input_ids[0] in banned
    assert tokenizer("Yes", add_special_tokens=False).input_ids[0] not in banned
    ban = make_opening_ban(tokenizer, prompt_length=5, openings=DONT_KNOW_OPENINGS)
    first = ban(torch.zeros((1, 5), dtype=torch.long), torch.zeros((1, len(tokenizer))))
    later = ban(torch.zeros((1, 6), dtype=torch.long), torch.zeros((1, len(tokenizer))))
    assert all(first[0, token] == -float("inf") for token in banned) and int((first == 0).sum()) > 1000
    assert bool((later == 0).all())


@pytest.mark.parametrize("question,fact", ANSWERED_BY_THE_PASSAGE)
async def test_a_model_whose_dont_know_is_not_trusted_answers_from_the_passage(shop_model, make_service, question,
                                                                               fact):
    """generator.yml's default (trust_dont_know: false): the customer gets an answer written from the passage, not
    the pasted passage after a refusal the service would not have passed on."""
    from generator.service import ReplyRequest

    assert not shop_model.allow_dont_know
    reply = await make_service(shop_model, timeout_s=30.0).reply(ReplyRequest(question))
    assert reply.source == "generated" and fact in reply.text, reply
