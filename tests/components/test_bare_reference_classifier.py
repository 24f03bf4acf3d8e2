"""BareReferenceClassifier: only a reference (and filler words) -> `inform` with certainty; anything more is left
to the intent classifier."""

from __future__ import annotations

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from custom_components.bare_reference_classifier import BareReferenceClassifier

CONTEXT = ExecutionContext(GraphSchema({}), node_name="BareReferenceClassifier0")
RANKING = [{"name": "order_status", "confidence": 0.4}, {"name": "inform", "confidence": 0.3},
           {"name": "out_of_scope", "confidence": 0.3}]


def classify(tmp_path, text: str, entity: str, value: str) -> Message:
    start = text.index(value)
    entities = [{"entity": entity, "value": value, "start": start, "end": start + len(value)},
                {"entity": "sentiment", "value": "neutral", "start": 0, "end": len(text)}]
    message = Message(data={TEXT: text, ENTITIES: entities, INTENT: RANKING[0], INTENT_RANKING_KEY: list(RANKING)})
    component = BareReferenceClassifier.create({}, LocalModelStorage(tmp_path), Resource("bare"), CONTEXT)
    component.process([message])
    return message


@pytest.mark.parametrize("text, entity, value", [
    ("NW-2024-00017", "order_id", "NW-2024-00017"),
    ("order no. 10002", "order_id", "10002"),
    ("it's #10002", "order_id", "10002"),
    ("my email is dan@example.com", "email", "dan@example.com"),
    ("R-2", "return_id", "R-2"),
])
def test_a_reference_alone_is_inform_with_certainty(tmp_path, text, entity, value):
    message = classify(tmp_path, text, entity, value)
    assert message.get(INTENT) == {"name": "inform", "confidence": 1.0}
    ranking = message.get(INTENT_RANKING_KEY)
    assert ranking[0] == {"name": "inform", "confidence": 1.0} and [e["name"] for e in ranking].count("inform") == 1


@pytest.mark.parametrize("text, entity, value", [
    ("cancel 10002", "order_id", "10002"),
    ("where is order 10002", "order_id", "10002"),
    ("return R-2", "return_id", "R-2"),
    ("10002 arrived broken", "order_id", "10002"),
])
def test_a_reference_with_a_request_is_left_to_the_classifier(tmp_path, text, entity, value):
    assert classify(tmp_path, text, entity, value).get(INTENT) == RANKING[0]
