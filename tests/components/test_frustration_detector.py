"""FrustrationDetector as Rasa runs it: trained from its labelled file in `rasa train`, persisted in the model
storage and loaded back; calm requests with negative facts are not frustration, outbursts are."""

from __future__ import annotations

import json

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from custom_components.frustration_detector import FrustrationDetector

CONTEXT = ExecutionContext(GraphSchema({}), node_name="train_FrustrationDetector0")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    storage = LocalModelStorage(tmp_path_factory.mktemp("frustration"))
    resource = Resource("frustration")
    FrustrationDetector.create({}, storage, resource, CONTEXT).train(TrainingData())
    return storage, resource


@pytest.fixture(scope="module")
def detector(trained) -> FrustrationDetector:
    storage, resource = trained
    return FrustrationDetector.load({}, storage, resource, CONTEXT)


def verdict(detector: FrustrationDetector, text: str) -> dict:
    message = Message(data={TEXT: text})
    detector.process([message])
    return message.get("frustration")


def test_training_stores_weights_and_a_cross_validated_threshold(trained):
    storage, resource = trained
    with storage.read_from(resource) as directory:
        weights = json.loads((directory / "frustration.json").read_text())
    assert 0.2 <= weights["threshold"] <= 0.8 and weights["examples"] > 500 and len(weights["coef"]) == 384 + 4


@pytest.mark.parametrize("text", ["My kettle arrived with a dent, how do I send it back?",
                                  "Please cancel order 10016, I found it somewhere else.",
                                  "Has my refund for the jumper been processed yet?"])
def test_calm_requests_with_negative_facts_are_not_frustration(detector, text):
    assert verdict(detector, text)["frustrated"] is False


@pytest.mark.parametrize("text", ["THIS IS THE FOURTH TIME I'M ASKING. WHERE IS MY PARCEL",
                                  "Unbelievable. Three weeks, no refund, no reply. I'm done with this shop!!",
                                  "oh brilliant, another bot that understands nothing"])
def test_outbursts_are_frustration(detector, text):
    result = verdict(detector, text)
    assert result["frustrated"] is True and 0 <= result["score"] <= 1


def test_messages_without_text_are_skipped_and_a_wrong_threshold_is_refused(detector, tmp_path):
    message = Message(data={TEXT: ""})
    detector.process([message])
    assert message.get("frustration") is None
    with pytest.raises(InvalidConfigException, match="threshold"):
        FrustrationDetector.create({"threshold": 1.5}, LocalModelStorage(tmp_path), Resource("x"), CONTEXT)
