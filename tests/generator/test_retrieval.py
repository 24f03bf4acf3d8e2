"""The knowledge base and its search: what the generator is allowed to know, and how it finds it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from generator.config import get_config
from generator.knowledge import lead_with, load_passages, question_parts, split_clauses
from generator.retrieval import get_index
from shop.settings import get_settings


def test_passages_cover_the_policies_and_the_faq_with_shop_settings_filled_in(index):
    ids = {passage.id for passage in index.passages}
    assert {"policy.shipping", "policy.returns", "policy.contact", "faq.opened_box", "faq.marked_delivered"} <= ids
    texts = {passage.id: passage.text for passage in index.passages}
    assert "within 30 days of delivery" in texts["faq.opened_box"]
    assert texts["faq.physical_store"].startswith("Northwind Goods is an online-only shop")
    assert all("{" not in text for text in texts.values())


def test_the_return_window_comes_from_shop_yml(tmp_path):
    settings = replace(get_settings(), returns=replace(get_settings().returns, window_days=14))
    texts = {passage.id: passage.text for passage in load_passages(settings)}
    assert "within 14 days" in texts["faq.opened_box"] and "within 14 days" in texts["policy.returns"]


def test_an_faq_entry_without_questions_is_a_configuration_error(tmp_path):
    faq = tmp_path / "faq.yml"
    faq.write_text("entries:\n  broken:\n    answer: We sell things.\n")
    with pytest.raises(ValueError, match="broken"):
        load_passages(get_settings(), faq=faq)


@pytest.mark.parametrize("question, passage", [
    ("can I send it back if I opened the box?", "faq.opened_box"),
    ("my parcel says delivered but it isn't here", "faq.marked_delivered"),
    ("how much does express delivery cost", "policy.shipping"),
    ("can i get my money back on another card", "faq.refund_other_card"),
    ("do u have a shop i can visit", "faq.physical_store"),
])
def test_questions_find_their_passage_first(index, question, passage):
    hits = index.search(question, 3)
    assert hits[0].passage.id == passage and hits[0].score >= get_config().min_score
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True) and len(hits) == 3


@pytest.mark.parametrize("message", ["what's the meaning of life", "tell me a joke", "asdfgh", "who won the match"])
def test_off_topic_messages_stay_below_the_threshold(index, message):
    assert index.search(message, 1)[0].score < get_config().min_score_unrecognised


def test_the_index_is_built_once_per_process(index):
    assert get_index() is get_index() is index
    assert index.search("   ", 3) == []


def test_a_sentence_of_two_parts_is_split_where_each_could_stand_alone():
    assert split_clauses("Standard shipping takes 3-5 business days and costs 4.95; it is free on orders over "
                         "50.00.") == ["Standard shipping takes 3-5 business days and costs 4.95",
                                       "it is free on orders over 50.00."]
    assert split_clauses("Our boxes are recyclable, and we do not use plastic air cushions.") == [
        "Our boxes are recyclable", "and we do not use plastic air cushions."]
    assert split_clauses("Check the card number, the expiry date and the security code.") == []  # a list, one part
    assert split_clauses("It ships today; sorry.") == []  # too short to stand alone


def test_the_sentence_a_question_is_about_can_lead_its_passage():
    text = "Standard shipping takes 3-5 days; it is free over 50.00. Express takes 1-2 days. We ship to the EU."
    assert lead_with(text, "Express takes 1-2 days.") == \
        "Express takes 1-2 days. Standard shipping takes 3-5 days; it is free over 50.00. We ship to the EU."
    assert lead_with(text, "it is free over 50.00.") == text  # a part of the first sentence: already first
    assert lead_with(text, "a fact of the order") == text  # not in this passage: unchanged


@pytest.mark.parametrize(("question", "focus"), [
    ("from what amount is shipping free?", "it is free on orders over 50.00."),
    ("how much is standard shipping", "Standard shipping takes 3-5 business days and costs 4.95"),
])
def test_the_focus_is_the_part_of_the_sentence_the_question_is_about(index, question, focus):
    assert index.search(question, 1)[0].focus == focus


@pytest.mark.parametrize(("message", "parts"), [
    ("can discounted final sale things be returned, and how do I tell which ones they are?",
     ["can discounted final sale things be returned", "how do I tell which ones they are"]),
    ("payment won't go through - what should I check, and can I pay some other way?",  # a statement is no question
     ["what should I check", "can I pay some other way"]),
    ("no confirmation in my inbox. where else should i look, and how long should i wait?",  # after a statement
     ["where else should i look", "how long should i wait"]),
    ("can I send it back if I opened the box?", []),
    ("where is my parcel? it was due yesterday", []),
])
def test_a_message_asking_two_things_is_split_into_its_questions(message, parts):
    assert question_parts(message) == parts


def test_each_question_of_a_message_gets_the_closest_sentence_read_with_the_whole_message(index):
    message = "how much is express and how long does it take"  # "it" is express, not standard shipping
    assert set(index.part_focuses(message, index.search(message, 1))) == {
        "Express shipping takes 1-2 business days and costs 12.95."}
    message = "can discounted final sale things be returned, and how do I tell which ones they are?"
    assert index.part_focuses(message, index.search(message, 1))[1] == (
        "The item page and your order confirmation say when an item is final sale.")
