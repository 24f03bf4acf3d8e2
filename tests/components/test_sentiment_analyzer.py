"""SentimentAnalyzer as Rasa runs it: `train` (copies the committed weights into a model storage), `load`, `process`;
the output format in the parse result; long, empty and missing text; the training script's reproducibility."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import pytest
import torch
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from safetensors.torch import load_file

from custom_components import sentiment_model
from custom_components.sentiment_analyzer import SentimentAnalyzer
from custom_components.sentiment_model import DEFAULT_WEIGHTS, LABELS, SentimentClassifier, read_weights_config
from custom_components.sentiment_train import main as train_main

CONTEXT = ExecutionContext(GraphSchema({}), node_name="train_SentimentAnalyzer0")


def trained(tmp_path: Path, **config: Any) -> Dict[str, Any]:
    (tmp_path / "storage").mkdir()
    storage = LocalModelStorage(tmp_path / "storage")
    resource = Resource("sentiment_analyzer")
    SentimentAnalyzer.create(config, storage, resource, CONTEXT).train(TrainingData())
    return {"config": config, "model_storage": storage, "resource": resource, "execution_context": CONTEXT}


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory) -> SentimentAnalyzer:
    return SentimentAnalyzer.load(**trained(tmp_path_factory.mktemp("sentiment")))


def parse(analyzer: SentimentAnalyzer, text: str) -> Message:
    message = Message(data={TEXT: text})
    analyzer.process([message])
    return message


def test_training_copies_the_committed_weights_into_the_model(tmp_path):
    args = trained(tmp_path)
    with args["model_storage"].read_from(args["resource"]) as directory:
        assert (directory / "sentiment.safetensors").read_bytes() == DEFAULT_WEIGHTS.read_bytes()


def test_loaded_model_does_not_need_the_repository_weights(tmp_path, monkeypatch):
    args = trained(tmp_path)
    args["config"] = {"weights": str(tmp_path / "moved-away.safetensors")}  # what `train` read is gone now
    message = Message(data={TEXT: "thanks, that was great"})
    SentimentAnalyzer.load(**args).process([message])
    assert message.get("sentiment")["label"] in LABELS


def test_missing_weights_fail_training_with_the_command_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="sentiment_train"):
        trained(tmp_path, weights=str(tmp_path / "nothing.safetensors"))


def test_an_unknown_precision_stops_training_with_the_choices(tmp_path):
    with pytest.raises(InvalidConfigException, match="precision 'fp16' is not one of auto, bf16, int8, fp32"):
        trained(tmp_path, precision="fp16")


def test_reduced_precisions_agree_with_full_precision():
    texts = ["this is the worst shop ever, my parcel is lost again", "thank you so much, that was quick",
             "what are your opening hours", "the lamp arrived broken and I am furious", "brilliant service"]
    full = SentimentClassifier.load(precision="fp32").predict(texts)
    for precision, tolerance in (("bf16", 0.02), ("int8", 0.2)):  # int8 rounds far more coarsely than bf16
        reduced = SentimentClassifier.load(precision=precision).predict(texts)
        assert [s.label for s in reduced] == [s.label for s in full]
        for ours, reference in zip(reduced, full, strict=True):
            assert ours.scores == pytest.approx(reference.scores, abs=tolerance)


def test_output_format_in_the_parse_result(analyzer):
    text = "Where is my order?"
    message = parse(analyzer, text)
    sentiment = message.as_dict(only_output_properties=True)["sentiment"]  # what /model/parse returns
    assert set(sentiment) == {"label", "confidence", "scores"} and sentiment["label"] in LABELS
    assert list(sentiment["scores"]) == list(LABELS) and sum(sentiment["scores"].values()) == pytest.approx(1, 1e-3)
    assert sentiment["confidence"] == max(sentiment["scores"].values()) == sentiment["scores"][sentiment["label"]]
    assert message.get(ENTITIES) == [{"entity": "sentiment", "value": sentiment["label"], "start": 0, "end": len(text),
                                      "confidence": sentiment["confidence"], "extractor": "SentimentAnalyzer"}]


def test_entities_of_other_extractors_are_kept(analyzer):
    message = Message(data={TEXT: "order 10002 please", ENTITIES: [{"entity": "order_id", "value": "10002"}]})
    analyzer.process([message])
    assert [entity["entity"] for entity in message.get(ENTITIES)] == ["order_id", "sentiment"]


def test_no_entity_when_configured_off(tmp_path):
    message = Message(data={TEXT: "hello"})
    SentimentAnalyzer.load(**trained(tmp_path, entity=None)).process([message])
    assert message.get("sentiment") and not message.get(ENTITIES)


@pytest.mark.parametrize(("text", "label"), [
    ("Thank you so much, you've been a great help!", "positive"),
    ("This is the worst service ever, my parcel is lost and nobody answers. I'm furious.", "negative"),
    ("Can I pay with PayPal?", "neutral"),
])
def test_predictions_on_clear_messages(analyzer, text, label):
    assert parse(analyzer, text).get("sentiment")["label"] == label


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_text_is_neutral(analyzer, text):
    sentiment = parse(analyzer, text).get("sentiment")
    assert sentiment == {"label": "neutral", "confidence": 1.0, "scores": {"negative": 0.0, "neutral": 1.0,
                                                                            "positive": 0.0}}


def test_message_without_text_is_left_alone(analyzer):
    message = Message(data={"intent": {"name": "greet"}})
    analyzer.process([message])
    assert message.get("sentiment") is None and message.get(ENTITIES) is None


def test_long_text_keeps_its_start_and_its_end(analyzer):
    classifier = analyzer._classifier
    text = ("I ordered a kettle. " + "I am writing about order 10002 and the delivery address on it. " * 300
            + "It arrived broken and nobody answers my emails. This is awful!")
    ids = classifier.token_ids(text)
    assert len(ids) == classifier.max_tokens
    decoded = classifier.tokenizer.decode(ids, skip_special_tokens=True)
    assert decoded.startswith("i ordered a kettle") and decoded.endswith("nobody answers my emails. this is awful!")
    assert parse(analyzer, text).get("sentiment")["label"] == "negative"


@pytest.mark.parametrize("precision", ["int8", "bf16", "fp32"])
def test_a_text_scores_the_same_alone_and_in_a_batch(precision):
    classifier = SentimentClassifier.load(precision=precision)
    texts = ["great, thanks", "the lamp is broken", "what are your opening hours", "ok"]
    one_by_one = [classifier.predict([text])[0].scores for text in texts]
    batched = [sentiment.scores for sentiment in classifier.predict(texts)]
    for single, together in zip(one_by_one, batched, strict=True):
        assert single == pytest.approx(together, abs=1e-3)


def test_weights_for_another_encoder_are_refused(monkeypatch):
    monkeypatch.setattr(sentiment_model, "encoder_fingerprint", lambda encoder_dir: "0" * 64)
    with pytest.raises(ValueError, match="another encoder"):
        SentimentClassifier.load(DEFAULT_WEIGHTS)


def test_new_weights_change_the_training_fingerprint(tmp_path):
    copy = tmp_path / "w.safetensors"
    copy.write_bytes(DEFAULT_WEIGHTS.read_bytes())
    before = SentimentAnalyzer.fingerprint_addon({"weights": str(copy)})
    copy.write_bytes(DEFAULT_WEIGHTS.read_bytes() + b" ")
    assert before != SentimentAnalyzer.fingerprint_addon({"weights": str(copy)})


def test_committed_weights_are_small_and_documented():
    assert DEFAULT_WEIGHTS.stat().st_size < 5_000_000
    provenance = json.loads(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    assert provenance["seed"] == 42 and provenance["held_out_metrics"]
    assert read_weights_config(DEFAULT_WEIGHTS)["labels"] == list(LABELS)


def tiny_data(root: Path) -> Path:
    """A few lines in the layout of ../shared/data, so the training script runs in seconds."""
    (root / "sst2").mkdir(parents=True)
    (root / "tweeteval_sentiment").mkdir()
    sst2 = ["label\tsentence", "1\ta gorgeous , witty film", "0\tdull and lifeless", "1\tgreat fun",
            "0\ta tedious mess"]
    (root / "sst2" / "train.tsv").write_text("\n".join(sst2) + "\n")
    (root / "sst2" / "dev.tsv").write_text("\n".join(sst2) + "\n")
    tweets = ["loving this weather", "worst day ever", "the meeting is at 3", "so happy for you",
              "traffic is awful", "new phone arrives tomorrow"]
    labels = ["2", "0", "1", "2", "0", "1"]
    for split in ("test", "val"):
        (root / "tweeteval_sentiment" / f"{split}_text.txt").write_text("\n".join(tweets) + "\n")
        (root / "tweeteval_sentiment" / f"{split}_labels.txt").write_text("\n".join(labels) + "\n")
    return root


def test_training_script_is_reproducible_with_a_seed(tmp_path):
    data = tiny_data(tmp_path / "data")
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name / "weights.safetensors"
        train_main(["--data-dir", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "4",
                    "--lora-layers", "1", "--rank", "2", "--threads", "1", "--seed", "7"])
        runs.append(load_file(str(out)))
    assert runs[0].keys() == runs[1].keys() and all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    provenance = json.loads((tmp_path / "a" / "weights.json").read_text())
    assert provenance["seed"] == 7 and set(provenance["held_out_metrics"]) == {
        "sst2_dev_accuracy", "tweeteval_val_macro_recall"}
    assert SentimentClassifier.load(tmp_path / "a" / "weights.safetensors").predict(["fine"])[0].label in LABELS
