"""The default pipeline end to end: the model scripts/train.sh trains from config.yml, loaded as `rasa run` loads it,
parses messages with the transformer intent classifier, the regex entity extractor and the FallbackClassifier.

Needs the trained model (models/shop.tar.gz); without it these tests are skipped with that reason, or fail when
REQUIRE_MODEL=1 (the test command sets it after training).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from rasa.shared.nlu.training_data.loading import load_data

from custom_components.transformer_intent_classifier import TransformerIntentClassifier
from shop.settings import PROJECT_ROOT


@pytest.fixture(scope="module")
def agent(trained_model: Path) -> Any:
    from rasa.core.agent import Agent

    return Agent.load(str(trained_model))


async def parse(agent: Any, text: str) -> Dict[str, Any]:
    return await agent.parse_message(text)


def entities(parsed: Dict[str, Any]) -> List[Tuple[str, str]]:
    """The extracted entities, without the per-message `sentiment` one (tests/components/test_sentiment_analyzer.py
    covers that)."""
    return [(entity["entity"], entity["value"]) for entity in parsed["entities"] if entity["entity"] != "sentiment"]


def test_the_model_classifies_intents_with_the_transformer_classifier(agent):
    schema = agent.processor.model_metadata.predict_schema
    assert any(node.uses is TransformerIntentClassifier for node in schema.nodes.values())


@pytest.mark.parametrize(
    "text, intent, expected_entities",
    [
        ("hello there", "greet", []),
        ("where is my order?", "order_status", []),
        ("has order 10002 shipped yet", "order_status", [("order_id", "10002")]),
        ("I want to send back the kettle I bought", "return_item", []),
        ("any news on the refund for R-2", "refund_status", [("return_id", "R-2")]),
        ("please cancel my order", "cancel_order", []),
        ("how much does delivery cost", "policy_shipping", []),
        ("can I pay with paypal", "policy_payment", []),
        ("I'd like to talk to a real person", "human_handoff", []),
        ("my email is alice@example.com", "inform", [("email", "alice@example.com")]),
        ("10002", "inform", [("order_id", "10002")]),
    ],
)
async def test_messages_get_their_intent_and_entities(agent, text, intent, expected_entities):
    parsed = await parse(agent, text)
    assert parsed["intent"]["name"] == intent, parsed["intent_ranking"][:3]
    assert entities(parsed) == expected_entities
    assert parsed["intent_ranking"][0] == parsed["intent"]
    assert set(parsed["sentiment"]["scores"]) == {"negative", "neutral", "positive"}


@pytest.mark.parametrize("text", ["", "   "])
async def test_empty_text_ends_in_the_fallback(agent, text):
    assert (await parse(agent, text))["intent"]["name"] == "nlu_fallback"


async def test_an_unrelated_question_ends_in_the_fallback(agent):
    parsed = await parse(agent, "what is the capital of peru")
    assert parsed["intent"]["name"] in {"nlu_fallback", "out_of_scope"}  # both are answered by action_fallback


async def test_a_very_long_message_is_parsed(agent):
    parsed = await parse(agent, "where is my order " * 3000)
    assert parsed["intent"]["name"] == "order_status"


async def test_the_ranking_is_sorted_and_lists_every_intent(agent):
    ranking = (await parse(agent, "where is my refund"))["intent_ranking"]
    confidences = [entry["confidence"] for entry in ranking]
    assert confidences == sorted(confidences, reverse=True)
    assert {entry["name"] for entry in ranking} == set(load_data(str(PROJECT_ROOT / "data" / "nlu.yml")).intents)
