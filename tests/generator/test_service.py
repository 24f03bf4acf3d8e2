"""The reply service: the checked generation, every fallback, the time limit, and the event loop staying free."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from generator.backends import Generation, GenerationError
from generator.config import get_config
from generator.retrieval import KnowledgeIndex
from generator.service import CHECK_RESERVE_S, GRACE_S, ReplyRequest, ReplyService, tidy
from shop.orders import order_fact_questions
from tests.generator.conftest import ScriptedBackend

OPENED_BOX = "can I send it back if I opened the box?"


async def test_a_reply_that_passes_the_checks_is_sent(make_service):
    backend = ScriptedBackend("Yes! You can return it within 30 days of delivery if it is unused.")
    reply = await make_service(backend).reply(ReplyRequest(OPENED_BOX))
    assert reply.source == "generated" and reply.text == backend.script and reply.rejected == ()
    assert reply.passage_id == "faq.opened_box" and reply.score > 0.9
    assert "within 30 days of delivery" in backend.prompts[0].question  # the passage reached the model


async def test_a_failing_reply_is_replaced_by_the_best_passage_and_the_reason_logged(make_service, caplog):
    backend = ScriptedBackend("No, you cannot send it back. You get a full refund within 14 days.")
    with caplog.at_level(logging.INFO, logger="generator.service"):
        reply = await make_service(backend).reply(ReplyRequest(OPENED_BOX))
    assert reply.source == "passage" and reply.text.startswith("Yes, opening the box is fine.")
    assert reply.raw == backend.script and any("contradicts" in reason for reason in reply.rejected)
    assert "replaced by passage faq.opened_box" in caplog.text and "contradicts" in caplog.text


async def test_nothing_in_the_knowledge_base_means_no_reply_and_no_generation(make_service):
    backend = ScriptedBackend("It will be sunny.")
    reply = await make_service(backend).reply(ReplyRequest("what's the weather like in Paris?"))
    assert reply.text is None and reply.source == "none" and not reply.grounded and backend.prompts == []


async def test_the_threshold_can_be_raised_per_request(make_service):
    service = make_service(ScriptedBackend("We ship to Norway."))
    assert (await service.reply(ReplyRequest("do you ship to Norway?", min_score=0.99))).text is None


async def test_a_backend_error_falls_back_to_the_passage(make_service):
    backend = ScriptedBackend(error=GenerationError("server answered 500"))
    reply = await make_service(backend).reply(ReplyRequest(OPENED_BOX))
    assert reply.source == "passage" and reply.rejected == ("error: GenerationError",)


async def test_when_retrieval_cannot_tell_two_passages_apart_both_are_given(make_service, index):
    # "Norway" is as close to the FAQ on other countries as to the shipping policy that names Norway (0.68/0.65)
    question = "Do you deliver to Norway?"
    best, runner_up = index.search(question, 2)
    assert best.score - runner_up.score <= 0.03
    backend = ScriptedBackend(error=GenerationError("server answered 500"))
    reply = await make_service(backend).reply(ReplyRequest(question))
    assert reply.source == "passage" and "Norway" in reply.text
    assert best.passage.text in reply.text and runner_up.passage.text in reply.text
    prompted = ScriptedBackend("unused")
    await make_service(prompted).reply(ReplyRequest(question))
    assert runner_up.passage.text.split(".")[0] in prompted.prompts[0].question  # the model saw both as well
    alone = await make_service(backend, runner_up_margin=0).reply(ReplyRequest(question))
    assert alone.text == best.passage.text  # switched off: the best passage only


async def test_a_reply_giving_the_other_half_of_the_sentence_is_replaced(make_service):
    question = "from what amount is shipping free?"
    wrong = await make_service(ScriptedBackend("Standard shipping takes 3-5 business days and costs 4.95.")).reply(
        ReplyRequest(question))
    assert wrong.source == "passage" and "free on orders over 50.00" in wrong.text
    assert any("misses the figure asked about" in reason for reason in wrong.rejected)
    right = await make_service(ScriptedBackend("Shipping is free on orders over 50.00.")).reply(ReplyRequest(question))
    assert right.source == "generated"


async def test_the_reply_must_answer_the_closest_sentence_of_every_passage_given(index):
    question = "which credit cards can i use"  # closest passage: a declined card; the runner-up lists the cards
    by_similarity = KnowledgeIndex(index.passages, index.encoder)  # the encoder's ranking alone
    best, runner_up = by_similarity.search(question, 2)
    assert best.passage.id == "faq.card_declined" and runner_up.focus_score > best.focus_score
    backend = ScriptedBackend("Please check the card number, the expiry date and the security code.")
    service = ReplyService(get_config(), index_factory=lambda: by_similarity, backend_factory=lambda _: backend)
    reply = await service.reply(ReplyRequest(question))
    assert reply.source == "passage" and "We accept Visa, Mastercard" in reply.text


@pytest.mark.parametrize("question,passage", [
    ("no confirmation after i ordered, which address does it go to?", "faq.confirmation_missing"),
    ("you sent me the wrong colour, do i pay to ship it back?", "faq.wrong_item"),
])
def test_word_overlap_puts_the_passage_that_answers_first(index, question, passage):
    """The encoder alone ranks a passage on a neighbouring topic first (changing the address, exchanges)."""
    assert index.lexical_weight > 0 and index.search(question, 1)[0].passage.id == passage
    assert KnowledgeIndex(index.passages, index.encoder).search(question, 1)[0].passage.id != passage


async def test_the_model_sees_the_sentence_the_question_is_about_first(make_service):
    """A small model answers with the first sentence it is given; the one the question is about goes first."""
    question = "how fast is express delivery?"
    backend = ScriptedBackend("Express shipping takes 1-2 business days.")
    reply = await make_service(backend).reply(ReplyRequest(question))
    assert backend.prompts[0].facts[0].startswith("Express shipping takes 1-2 business days")
    assert reply.source == "generated" and reply.passage_id == "policy.shipping"
    in_order = ScriptedBackend("Express shipping takes 1-2 business days.")
    await make_service(in_order, focus_first=False).reply(ReplyRequest(question))
    assert in_order.prompts[0].facts[0].startswith("Standard shipping")  # as the knowledge base writes it


async def test_a_reply_to_one_half_of_a_two_part_question_is_replaced(make_service):
    question = "can discounted final sale things be returned, and how do I tell which ones they are?"
    half = await make_service(ScriptedBackend("Items marked final sale cannot be returned or refunded.")).reply(
        ReplyRequest(question))
    assert half.source == "passage" and "The item page and your order confirmation" in half.text
    assert any(reason.startswith("answers only part of the question") for reason in half.rejected)
    whole = await make_service(ScriptedBackend(
        "No, items marked final sale cannot be returned. The item page and your order confirmation say when an item "
        "is final sale.")).reply(ReplyRequest(question))
    assert whole.source == "generated"


async def test_a_timeout_falls_back_within_the_limit_and_stops_the_model(make_service):
    backend = ScriptedBackend("Yes, within 30 days.", delay_s=3.0)
    started = time.monotonic()
    reply = await make_service(backend, timeout_s=0.5).reply(ReplyRequest(OPENED_BOX))
    elapsed = time.monotonic() - started
    assert reply.source == "passage" and reply.rejected[0].startswith("timeout")
    assert elapsed < 0.5 + GRACE_S + 0.5
    assert backend.cancels[0].is_set()  # the local model checks this after every token and stops
    assert backend.deadlines[0] - started == pytest.approx(0.5 - CHECK_RESERVE_S, abs=0.3)


async def test_generation_does_not_block_the_event_loop(make_service):
    service = make_service(ScriptedBackend("Yes, within 30 days of delivery if it is unused.", delay_s=1.0))
    ticks = 0

    async def other_requests():
        nonlocal ticks
        for _ in range(10):
            await asyncio.sleep(0.05)
            ticks += 1

    reply, _ = await asyncio.gather(service.reply(ReplyRequest(OPENED_BOX)), other_requests())
    assert reply.source == "generated" and ticks == 10  # ten other turns were served during the generation


async def test_switched_off_generation_answers_with_the_passage(make_service):
    backend = ScriptedBackend("unused")
    reply = await make_service(backend, enabled=False).reply(ReplyRequest(OPENED_BOX))
    assert reply.source == "passage" and reply.rejected == ("generation switched off",) and backend.prompts == []


async def test_history_and_verified_facts_reach_the_prompt(make_service):
    backend = ScriptedBackend("Order 10002 is shipped with DHL.")
    request = ReplyRequest("which courier is delivering my order?",
                           history=[("customer", "hi"), ("assistant", "Hello!")],
                           verified_facts=["order 10002 is shipped; items: 1 x Desk lamp", "carrier DHL"],
                           fact_questions={"carrier DHL": ("which courier is delivering it",)})
    reply = await make_service(backend).reply(request)
    prompt = backend.prompts[0]
    assert prompt.history == (("customer", "hi"), ("assistant", "Hello!"))
    assert any("order 10002 is shipped" in fact for fact in prompt.facts)
    assert reply.source == "generated"  # its number and name come from the verified facts


async def test_the_models_i_dont_know_is_trusted_only_when_configured(make_service):
    """Trusted (a capable model): the customer gets the shop's own "I don't know" (with the offer of a person), not
    an unrelated paragraph. Not trusted (the default small model, which says it about answerable questions): the
    passage, as for a reply that fails a check."""
    backend = ScriptedBackend("I'm sorry, I don't know that.")
    reply = await make_service(backend, trust_dont_know=True).reply(ReplyRequest(OPENED_BOX))
    assert reply.source == "unknown" and reply.text is None and not reply.grounded
    reply = await make_service(backend, trust_dont_know=False).reply(ReplyRequest(OPENED_BOX))
    assert reply.source == "passage" and reply.rejected == ("the model said it does not know",)


async def test_a_question_about_the_verified_order_is_answered_from_its_facts_alone(make_service):
    facts = ["Order 10002 is expected to arrive on Wednesday 2 December 2026."]
    backend = ScriptedBackend("Order 10002 is expected to arrive on Wednesday 2 December 2026.")
    service = make_service(backend, min_score=0.99)  # no passage is close enough
    today = ["Today is Monday 30 November 2026."]
    reply = await service.reply(ReplyRequest("will it come before the weekend?", verified_facts=facts,
                                             standing_facts=today))
    assert reply.source == "generated" and "Wednesday 2 December" in reply.text
    backend.script = "Order 10002 is expected to arrive on Friday 4 December 2026."  # not in its facts
    reply = await service.reply(ReplyRequest("will it come before the weekend?", verified_facts=facts,
                                             standing_facts=today))
    assert reply.source == "facts" and reply.rejected and "Wednesday 2 December" in reply.text  # the true fact
    unverified = await service.reply(ReplyRequest("will it come before the weekend?"))
    assert unverified.source == "none" and len(backend.prompts) == 2  # no facts, no passage: no generation


def test_tidy_keeps_whole_sentences_only():
    cut = Generation("Yes, it is fine. You can return it within 30 days of", 20, 1.0, "deadline")
    assert tidy(cut, 2) == "Yes, it is fine."
    rambling = Generation("One. Two. Three.", 9, 1.0, "eos")
    assert tidy(rambling, 2) == "One. Two."
    assert tidy(Generation("Yes it is", 3, 1.0, "eos"), 2) == "Yes it is"


async def test_the_service_and_its_model_are_loaded_once(make_service, monkeypatch):
    from generator import service as module

    monkeypatch.setattr(module, "_service", None)
    monkeypatch.setattr(module, "ReplyService", lambda config: object())
    assert module.get_service() is module.get_service()


def test_the_knowledge_base_and_the_model_never_load_at_the_same_time(index):
    from generator.config import get_config
    from generator.service import ReplyService

    loading, overlaps = [], []

    def slow(result):
        def load(*_):
            overlaps.append(bool(loading))
            loading.append(True)
            time.sleep(0.2)
            loading.pop()
            return result
        return load

    service = ReplyService(get_config(), index_factory=slow(index), backend_factory=slow(ScriptedBackend()))
    service.preload()
    service.index(), service.backend()
    assert overlaps == [False, False]


KEYED_FACTS = (("items", "Order 10002 contains 1 x Desk lamp."),
               ("placed", "Order 10002 was placed on Thursday 26 November 2026."),
               ("shipped", "Order 10002 has already shipped: it left our warehouse on Friday 27 November 2026 "
                           "with DHL."),
               ("tracking", "The tracking number of order 10002 is JD014600003."),
               ("expected", "Order 10002 is expected to arrive on Monday 30 November 2026."))
ORDER_FACTS = tuple(fact for _, fact in KEYED_FACTS)
TODAY = ("Today is Saturday 28 November 2026.",)


def order_question(message: str) -> ReplyRequest:
    """`message` from a customer whose order 10002 is verified, as actions/generate.py asks it."""
    questions = order_fact_questions()
    return ReplyRequest(message, verified_facts=ORDER_FACTS, standing_facts=TODAY,
                        fact_questions={fact: questions[kind] for kind, fact in KEYED_FACTS})


async def test_an_order_question_gets_the_facts_closest_to_it_and_today(make_service):
    backend = ScriptedBackend("Your parcel is with DHL.")
    reply = await make_service(backend).reply(order_question("which courier has got my parcel"))
    given = backend.prompts[0].facts
    assert reply.source == "generated" and reply.text == "Your parcel is with DHL."
    assert TODAY[0] in given and ORDER_FACTS[2] in given  # the carrier's fact, and today's date
    assert ORDER_FACTS[0] not in given and len([fact for fact in given if fact in ORDER_FACTS]) <= 2


@pytest.mark.parametrize("wrong", ["Order 10002 was placed on Thursday 26 November 2026.", TODAY[0]])
async def test_a_true_order_fact_that_does_not_answer_is_replaced_by_the_one_that_does(make_service, wrong):
    reply = await make_service(ScriptedBackend(wrong)).reply(order_question("tracking number pls"))
    assert reply.source == "facts" and "JD014600003" in reply.text and wrong not in reply.text
    assert any("answers something else" in reason for reason in reply.rejected)


async def test_an_order_question_with_a_policy_gets_the_fact_and_the_policy_when_generation_fails(make_service):
    backend = ScriptedBackend(error=GenerationError("server answered 500"))
    reply = await make_service(backend).reply(order_question("has it shipped yet? if not I want to cancel it"))
    assert reply.source == "facts" and reply.text.startswith(ORDER_FACTS[2])
    assert reply.passage_id == "faq.cancel_after_shipping" and "can only be cancelled before it ships" in reply.text


async def test_the_closest_order_fact_is_given_last_right_before_the_question(make_service):
    """The 135M model copies the fact nearest the question: that must be the one that answers it."""
    backend = ScriptedBackend("Your parcel is with DHL.")
    await make_service(backend).reply(order_question("which courier has got my parcel"))
    assert backend.prompts[0].facts[-1] == ORDER_FACTS[2]


async def test_an_order_question_whose_answer_holds_a_policy_too_needs_both_in_a_generated_reply(make_service):
    """"has it shipped? if not I want to cancel it": the order's shipping fact alone leaves out what the customer
    can do; the fallback, which gives the fact and the cancellation rule, goes instead."""
    question = "has it shipped yet? if not I want to cancel it"
    alone = await make_service(ScriptedBackend(ORDER_FACTS[2])).reply(order_question(question))
    assert alone.source == "facts" and "can only be cancelled before it ships" in alone.text
    assert any(reason.startswith("answers only part of the question") for reason in alone.rejected)
    both = ORDER_FACTS[2] + " An order can only be cancelled before it ships."
    reply = await make_service(ScriptedBackend(both)).reply(order_question(question))
    assert reply.source == "generated" and reply.text == both, reply.rejected


async def test_a_passage_far_from_an_order_question_is_left_out(make_service):
    backend = ScriptedBackend(error=GenerationError("server answered 500"))
    reply = await make_service(backend).reply(order_question("when is it arriving? exact date please"))
    assert reply.source == "facts" and reply.text == ORDER_FACTS[4] and reply.passage_id is None


async def test_a_no_that_contradicts_its_own_sentence_is_not_sent(make_service):
    backend = ScriptedBackend("No, we accept Visa, Mastercard, American Express, PayPal, Apple Pay and Google Pay.")
    reply = await make_service(backend).reply(ReplyRequest("does paypal work on your site"))
    assert reply.source == "generated" and reply.text.startswith("We accept Visa") and "PayPal" in reply.text
