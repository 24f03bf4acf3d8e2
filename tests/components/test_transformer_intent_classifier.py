"""TransformerIntentClassifier as Rasa's own component tests exercise theirs: a temporary model storage, train on a
small data set, persist, load and predict. Kept fast: tiny data, a few epochs, 16 tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import torch
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.classifiers.fallback_classifier import FallbackClassifier
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from safetensors.torch import load_file

from custom_components.encoder import length_bucketed_batches, select_device
from custom_components.transformer_intent_classifier import (
    TransformerIntentClassifier,
    _calibration_split,
    _fit_temperature,
)

EXAMPLES = {
    "greet": ["hi", "hello", "hey there", "good morning", "hiya", "hello there", "hey", "good evening"],
    "goodbye": ["bye", "goodbye", "see you later", "bye bye", "see ya", "farewell", "cya", "good night"],
    "order_status": ["where is my order", "track my order", "has my order shipped", "where is my package",
                     "when will my order arrive", "order status", "tracking number please", "my parcel is late"],
    "policy_payment": ["can i pay with paypal", "do you accept visa", "payment options", "do you take credit cards",
                       "can i pay with apple pay", "which cards do you accept", "how can i pay", "do you take amex"],
}
FAST = {"epochs": 6, "batch_size": 8, "max_length": 16, "learning_rate": 3e-4, "head_learning_rate": 1e-2,
        "calibration_fraction": 0.0, "num_threads": 0, "device": "cpu"}
PROBES = ["hello!", "bye for now", "where's my parcel", "paypal accepted?", "what is the meaning of life"]


def training_data() -> TrainingData:
    return TrainingData([Message(data={TEXT: text, INTENT: intent})
                         for intent, texts in EXAMPLES.items() for text in texts])


def train(tmp_path: Path, config: Dict[str, Any], data: TrainingData) -> Dict[str, Any]:
    """Train in a fresh model storage; returns what `load` needs, as Rasa's graph would pass it."""
    storage = LocalModelStorage(tmp_path)
    resource = Resource("transformer_intent_classifier")
    context = ExecutionContext(GraphSchema({}), node_name="train_TransformerIntentClassifier0")
    component = TransformerIntentClassifier.create(config, storage, resource, context)
    component.train(data)
    return {"config": config, "model_storage": storage, "resource": resource, "execution_context": context,
            "trained": component}


def load(trained: Dict[str, Any]) -> TransformerIntentClassifier:
    return TransformerIntentClassifier.load(trained["config"], trained["model_storage"], trained["resource"],
                                            trained["execution_context"])


def parse(component: TransformerIntentClassifier, texts: List[str]) -> List[Message]:
    return component.process([Message(data={TEXT: text}) for text in texts])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Dict[str, Any]:
    return train(tmp_path_factory.mktemp("storage"), FAST, training_data())


@pytest.fixture(scope="module")
def loaded(trained) -> TransformerIntentClassifier:
    return load(trained)


def test_is_registered_as_a_trainable_intent_classifier():
    registered = DefaultV1Recipe._from_registry(TransformerIntentClassifier.__name__)
    assert registered.is_trainable
    assert DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER in registered.types


def test_learns_the_training_data(loaded):
    messages = parse(loaded, [text for texts in EXAMPLES.values() for text in texts])
    gold = [intent for intent, texts in EXAMPLES.items() for _ in texts]
    correct = sum(message.get(INTENT)["name"] == intent for message, intent in zip(messages, gold, strict=True))
    assert correct / len(gold) >= 0.9


def test_loaded_model_predicts_what_the_trained_one_did(trained, loaded):
    before = [message.get(INTENT_RANKING_KEY) for message in parse(trained["trained"], PROBES)]
    after = [message.get(INTENT_RANKING_KEY) for message in parse(loaded, PROBES)]
    for ranking_before, ranking_after in zip(before, after, strict=True):
        assert [entry["name"] for entry in ranking_before] == [entry["name"] for entry in ranking_after]
        assert [entry["confidence"] for entry in ranking_after] == pytest.approx(
            [entry["confidence"] for entry in ranking_before], abs=1e-6)


def test_persists_weights_tokenizer_and_label_map(trained):
    with trained["model_storage"].read_from(trained["resource"]) as directory:
        names = {path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file()}
    assert {"classifier.json", "head.safetensors", "encoder/config.json", "encoder/model.safetensors"} <= names
    assert any(name.startswith("encoder/tokenizer") or name == "encoder/vocab.txt" for name in names)


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory) -> Dict[str, Any]:
    return train(tmp_path_factory.mktemp("ensemble"), {**FAST, "ensemble_size": 2}, training_data())


def test_an_ensemble_averages_its_members_whose_first_is_the_single_model_of_that_seed(trained, ensemble):
    component = ensemble["trained"]
    token_ids = component._tokenize(PROBES)
    members = [component._batched(model, model, token_ids, len(EXAMPLES)) for model in component._models]
    assert len(members) == 2
    assert not torch.allclose(members[0], members[1], atol=1e-3)  # the second member has its own seed
    assert torch.allclose(component._logits(token_ids), (members[0] + members[1]) / 2)
    assert torch.allclose(members[0], trained["trained"]._logits(token_ids), atol=1e-5)


def test_an_ensemble_persists_every_member_and_serves_them_after_loading(ensemble):
    with ensemble["model_storage"].read_from(ensemble["resource"]) as directory:
        names = {path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file()}
    assert {"head.safetensors", "encoder/model.safetensors",
            "head-1.safetensors", "encoder-1/model.safetensors"} <= names
    before = [message.get(INTENT_RANKING_KEY) for message in parse(ensemble["trained"], PROBES)]
    after = [message.get(INTENT_RANKING_KEY) for message in parse(load(ensemble), PROBES)]
    for ranking_before, ranking_after in zip(before, after, strict=True):
        assert [entry["name"] for entry in ranking_before] == [entry["name"] for entry in ranking_after]
        assert [entry["confidence"] for entry in ranking_after] == pytest.approx(
            [entry["confidence"] for entry in ranking_before], abs=1e-6)


def test_bf16_predictions_agree_with_fp32_and_do_not_depend_on_the_batch(trained, loaded):
    component = load({**trained, "config": {**trained["config"], "prediction_precision": "bf16"}})
    assert all(parameter.dtype == torch.bfloat16 for parameter in component._models[0].parameters())
    in_scope = PROBES[:4]
    for fp32, bf16 in zip(parse(loaded, in_scope), parse(component, in_scope), strict=True):
        assert bf16.get(INTENT)["name"] == fp32.get(INTENT)["name"]
        assert bf16.get(INTENT)["confidence"] == pytest.approx(fp32.get(INTENT)["confidence"], abs=0.05)
    batched = parse(component, PROBES)
    for text, batched_message in zip(PROBES, batched, strict=True):
        assert parse(component, [text])[0].get(INTENT_RANKING_KEY) == batched_message.get(INTENT_RANKING_KEY)


def test_a_bf16_model_is_stored_in_bf16_and_predicts_the_same_after_loading(tmp_path):
    trained = train(tmp_path, {**FAST, "prediction_precision": "bf16"}, training_data())
    with trained["model_storage"].read_from(trained["resource"]) as directory:
        stored = load_file(directory / "encoder" / "model.safetensors")
    assert {tensor.dtype for tensor in stored.values()} == {torch.bfloat16}
    before = [message.get(INTENT_RANKING_KEY) for message in parse(trained["trained"], PROBES)]
    assert [message.get(INTENT_RANKING_KEY) for message in parse(load(trained), PROBES)] == before


def test_ranking_is_sorted_complete_and_sums_to_one(loaded):
    for message in parse(loaded, PROBES):
        ranking = message.get(INTENT_RANKING_KEY)
        confidences = [entry["confidence"] for entry in ranking]
        assert {entry["name"] for entry in ranking} == set(EXAMPLES)
        assert confidences == sorted(confidences, reverse=True)
        assert sum(confidences) == pytest.approx(1.0, abs=1e-5)
        assert message.get(INTENT) == ranking[0]
        assert all(isinstance(value, float) for value in confidences)
        assert message.as_dict(only_output_properties=True)[INTENT] == ranking[0]


def test_ranking_length_cuts_the_ranking(trained):
    component = load({**trained, "config": {**trained["config"], "ranking_length": 2}})
    ranking = parse(component, ["hello"])[0].get(INTENT_RANKING_KEY)
    assert len(ranking) == 2


def test_a_batch_predicts_what_single_messages_do(loaded):
    batched = parse(loaded, PROBES)
    for text, batched_message in zip(PROBES, batched, strict=True):
        single = parse(loaded, [text])[0]
        assert single.get(INTENT)["name"] == batched_message.get(INTENT)["name"]
        assert single.get(INTENT)["confidence"] == pytest.approx(batched_message.get(INTENT)["confidence"], abs=1e-5)


def test_long_input_is_truncated_not_refused(loaded):
    long_text = "where is my order " * 2000
    assert len(loaded._tokenize([long_text])[0]) == FAST["max_length"]
    message = parse(loaded, [long_text])[0]
    assert message.get(INTENT)["name"] == "order_status"


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_gets_no_intent_and_then_the_fallback(loaded, text):
    message = parse(loaded, [text])[0]
    assert message.get(INTENT) == {"name": None, "confidence": 0.0}
    assert message.get(INTENT_RANKING_KEY) == []
    fallback = FallbackClassifier.create({**FallbackClassifier.get_default_config(), "threshold": 0.5}, None, None,
                                         None)
    assert fallback.process([message])[0].get(INTENT)["name"] == "nlu_fallback"


def test_empty_and_real_messages_in_one_batch(loaded):
    messages = parse(loaded, ["", "hello", " "])
    assert [message.get(INTENT)["name"] for message in messages] == [None, "greet", None]


def test_same_seed_gives_the_same_model(tmp_path, loaded):
    again = load(train(tmp_path, FAST, training_data()))
    for first, second in zip(parse(loaded, PROBES), parse(again, PROBES), strict=True):
        assert first.get(INTENT_RANKING_KEY) == second.get(INTENT_RANKING_KEY)


def test_calibration_fits_a_temperature_on_held_out_examples(tmp_path):
    data = TrainingData([Message(data={TEXT: f"{text} {suffix}", INTENT: intent})
                         for intent, texts in EXAMPLES.items() for text in texts for suffix in ("", "please", "!")])
    trained = train(tmp_path, {**FAST, "epochs": 2, "calibration_fraction": 0.25}, data)
    with trained["model_storage"].read_from(trained["resource"]) as directory:
        metadata = (directory / "classifier.json").read_text()
    assert '"examples": 24' in metadata  # a quarter of each intent's 24 examples
    assert load(trained)._temperature == trained["trained"]._temperature != 1.0


def test_calibration_split_is_stratified_and_seeded():
    labels = [0] * 150 + [1] * 65 + [2] * 9
    train_rows, held_out = _calibration_split(labels, 0.1, np.random.default_rng(7))
    assert sorted(train_rows + held_out) == list(range(len(labels)))
    assert [labels[row] for row in held_out].count(0) == 15
    assert [labels[row] for row in held_out].count(1) == 6
    assert 2 not in {labels[row] for row in held_out}  # too few examples to spare one
    assert _calibration_split(labels, 0.1, np.random.default_rng(7)) == (train_rows, held_out)


def test_calibration_split_holds_nothing_out_when_too_little_would_be_held_out():
    labels = [0] * 30 + [1] * 30
    assert _calibration_split(labels, 0.1, np.random.default_rng(0)) == (list(range(60)), [])


def test_temperature_scaling_softens_overconfident_logits():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (400,), generator=generator)
    logits = torch.randn(400, 5, generator=generator)
    logits[torch.arange(400), labels] += 2.0
    calibration = _fit_temperature(logits * 6, labels)  # right often, but far too sure
    assert calibration["temperature"] > 3
    assert calibration["nll_after"] < calibration["nll_before"]


def test_length_bucketed_batches_cover_every_row_once():
    lengths = list(np.random.default_rng(0).integers(3, 60, 1000))
    batches = length_bucketed_batches(lengths, 32, np.random.default_rng(1))
    assert sorted(row for batch in batches for row in batch) == list(range(1000))
    spread = np.mean([max(lengths[row] for row in batch) - min(lengths[row] for row in batch) for batch in batches])
    assert spread < 10  # random batches of 32 would span ~50 tokens


def test_without_training_examples_nothing_is_persisted_and_it_predicts_nothing(tmp_path):
    trained = train(tmp_path, FAST, TrainingData())
    component = load(trained)
    message = parse(component, ["hello"])[0]
    assert message.get(INTENT) == {"name": None, "confidence": 0.0}


def test_cpu_by_default_when_no_gpu_is_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(InvalidConfigException, match="no CUDA GPU"):
            select_device("cuda")


@pytest.mark.parametrize(
    "config, message",
    [
        ({"epochs": 0}, "`epochs` must be a positive integer, got 0"),
        ({"epochs": "3"}, "`epochs` must be a positive integer, got '3'"),
        ({"batch_size": 2.5}, "`batch_size` must be a positive integer"),
        ({"learning_rate": -1}, "`learning_rate` must be a positive number, got -1"),
        ({"max_length": 2}, "`max_length` must be an integer of at least 4"),
        ({"dropout": 1.5}, "`dropout` must be a number in [0, 1)"),
        ({"calibration_fraction": 0.9}, "`calibration_fraction` must be a number in [0, 0.5]"),
        ({"pooling": "max"}, "`pooling` must be one of mean, cls, got 'max'"),
        ({"device": "tpu"}, "`device` must be auto, cpu, cuda or cuda:N"),
        ({"num_threads": -2}, "`num_threads` must be an integer of 0 or more"),
        ({"freeze_embeddings": "yes"}, "`freeze_embeddings` must be true or false"),
        ({"ensemble_size": 0}, "`ensemble_size` must be a positive integer, got 0"),
        ({"prediction_precision": "fp16"}, "`prediction_precision` must be one of auto, bf16, fp32, got 'fp16'"),
        ({"epoch": 3}, "unknown option(s) epoch; the options are"),
    ],
)
def test_invalid_config_is_rejected_with_a_clear_message(tmp_path, config, message):
    with pytest.raises(InvalidConfigException) as error:
        TransformerIntentClassifier.create(config, LocalModelStorage(tmp_path), Resource("r"),
                                           ExecutionContext(GraphSchema({})))
    assert message in str(error.value)
    assert "TransformerIntentClassifier" in str(error.value)


def test_several_problems_are_reported_together():
    with pytest.raises(InvalidConfigException) as error:
        TransformerIntentClassifier.validate_config({"epochs": 0, "batch_size": 0})
    assert "`epochs`" in str(error.value) and "`batch_size`" in str(error.value)


def test_missing_encoder_folder_is_named(tmp_path):
    with pytest.raises(InvalidConfigException, match="is not a Hugging Face model folder"):
        TransformerIntentClassifier.create({"encoder": str(tmp_path / "nowhere")}, LocalModelStorage(tmp_path),
                                           Resource("r"), ExecutionContext(GraphSchema({})))


def test_max_length_beyond_the_encoder_is_rejected_when_training(tmp_path):
    with pytest.raises(InvalidConfigException, match="this encoder takes at most 512 tokens"):
        train(tmp_path, {**FAST, "max_length": 1000}, training_data())

