"""Tune the generator's LoRA adapter on this shop's answers, on the CPU, with a fixed seed.

    python -m generator.tuning.train                 # build the examples, tune, write generator/adapters/shop-answers
    python -m generator.tuning.train --dry-run       # only build and count the examples (var/tuning/examples.jsonl)

Why an adapter: the base model (SmolLM2-135M-Instruct) reads the passage but answers around it (82 % of its
replies failed the checks); a LoRA adapter (PEFT) teaches it the shop's answer style, copying facts and saying
"I don't know" when the passage does not answer, for a few MiB. `rasa train` and setup never run this; the
adapter is committed, and generator.yml `local.adapter` points at it. Takes ~20 minutes on 2 cores, in float32
(bfloat16 is emulated, and much slower, on CPUs without AVX-512 BF16).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from generator.adapter import TUNED_FILE, base_fingerprint
from generator.config import PROJECT_ROOT, get_config
from generator.knowledge import load_passages
from generator.tuning.dataset import TUNING_DIR, Example, build_examples
from shop.settings import get_settings

DEFAULT_OUT = PROJECT_ROOT / "generator" / "adapters" / "shop-answers"
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
IGNORE = -100


def tokenize(tokenizer, example: Example, end: str) -> Tuple[List[int], List[int]]:
    """Input ids and labels: the loss is on the answer (and its end-of-turn token) only."""
    prompt_ids = tokenizer.apply_chat_template(example.prompt().messages(), add_generation_prompt=True,
                                               tokenize=True)
    answer_ids = tokenizer(example.answer + end, add_special_tokens=False).input_ids
    return prompt_ids + answer_ids, [IGNORE] * len(prompt_ids) + answer_ids


def batches(items: Sequence[Tuple[List[int], List[int]]], size: int, rng: random.Random) -> List[List[int]]:
    """Indices in batches of similar length (little padding), in random order."""
    order = sorted(range(len(items)), key=lambda i: len(items[i][0]))
    groups = [order[i:i + size] for i in range(0, len(order), size)]
    rng.shuffle(groups)
    return groups


def answer_loss(model, ids, mask, labels):
    """Cross-entropy on the answer tokens only, computing the vocabulary projection only where it is needed
    (about a fifth of the forward pass on all positions)."""
    import torch

    inner = model.get_base_model()
    hidden = inner.model(input_ids=ids, attention_mask=mask).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != IGNORE
    logits = inner.lm_head(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep])


def data_fingerprint(examples: Sequence[Example]) -> str:
    text = json.dumps([example.__dict__ for example in examples], sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def train(args: argparse.Namespace) -> Dict[str, object]:
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from generator.prepare import ensure_prepared
    from generator.retrieval import Encoder

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    config, settings = get_config(), get_settings()
    values = {"return_window_days": settings.returns.window_days, "shop_name": settings.shop_name}
    examples = build_examples(load_passages(settings), settings.shop_name, values, Encoder(), seed=args.seed,
                              hand_file=args.hand, unanswerable_file=args.unanswerable, order_count=args.orders,
                              min_score=config.min_score, returns=settings.returns)
    counts = Counter(example.kind for example in examples)
    work = PROJECT_ROOT / "var" / "tuning"
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "examples.jsonl", "w", encoding="utf-8") as out:
        for example in examples:
            out.write(json.dumps({"kind": example.kind, "question": example.question, "answer": example.answer,
                                  "passages": example.passages, "facts": example.facts}) + "\n")
    print(f"tuning: {len(examples)} examples {dict(counts)} (written to {work / 'examples.jsonl'})", flush=True)
    if args.dry_run:
        return {"examples": len(examples)}

    base = Path(config.model_path).expanduser() if config.model_path else ensure_prepared(config)
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, local_files_only=True)
    end = tokenizer.convert_ids_to_tokens(model.generation_config.eos_token_id
                                          if isinstance(model.generation_config.eos_token_id, int)
                                          else model.generation_config.eos_token_id[0])
    layers = model.config.num_hidden_layers
    tuned_layers = list(range(max(0, layers - args.layers), layers))  # the top layers: backward stops below them
    lora = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.05, target_modules=TARGET_MODULES,
                      layers_to_transform=tuned_layers, task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    items = [tokenize(tokenizer, example, end) for example in examples]
    rng = random.Random(args.seed)
    steps_per_epoch = math.ceil(len(items) / args.batch)
    total = steps_per_epoch * args.epochs
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    warmup = max(1, total // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * max(0.0, (total - step) / max(1, total - warmup)))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    started, step, losses = time.monotonic(), 0, []
    print(f"tuning: {total} steps of {args.batch} ({args.epochs} epochs), LoRA r={args.rank} on {base}", flush=True)
    for _epoch in range(args.epochs):
        for group in batches(items, args.batch, rng):
            width = max(len(items[i][0]) for i in group)
            ids = torch.full((len(group), width), pad, dtype=torch.long)
            labels = torch.full((len(group), width), IGNORE, dtype=torch.long)
            mask = torch.zeros((len(group), width), dtype=torch.long)
            for row, index in enumerate(group):
                tokens, targets = items[index]
                ids[row, :len(tokens)] = torch.tensor(tokens)
                labels[row, :len(targets)] = torch.tensor(targets)
                mask[row, :len(tokens)] = 1
            loss = answer_loss(model, ids, mask, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(float(loss))
            step += 1
            if step % 10 == 0 or step == total:
                elapsed = time.monotonic() - started
                recent = sum(losses[-10:]) / len(losses[-10:])
                print(f"tuning: step {step}/{total} loss {recent:.3f} "
                      f"({elapsed:.0f} s, about {elapsed / step * (total - step):.0f} s left)", flush=True)
    seconds = time.monotonic() - started

    out = Path(args.out)
    staging = out.with_name(f"{out.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    weights = staging / "adapter_model.safetensors"
    save_file({name: tensor.to(torch.bfloat16).contiguous() for name, tensor in load_file(str(weights)).items()},
              str(weights))  # half the size; merged into bf16 or fp32 weights alike
    (staging / "README.md").unlink(missing_ok=True)
    report = {
        "base_model": base.name, "base_fingerprint": base_fingerprint(base), "seed": args.seed,
        "epochs": args.epochs, "batch": args.batch, "learning_rate": args.lr, "lora_rank": args.rank,
        "lora_alpha": 2 * args.rank, "target_modules": TARGET_MODULES, "tuned_layers": tuned_layers,
        "examples": len(examples),
        "examples_by_kind": dict(counts), "data_fingerprint": data_fingerprint(examples),
        "hand_file": str(Path(args.hand).relative_to(PROJECT_ROOT)),
        "unanswerable_file": str(Path(args.unanswerable).relative_to(PROJECT_ROOT)),
        "final_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4), "train_seconds": round(seconds),
        "threads": args.threads, "torch": torch.__version__,
        "tuned_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m generator.tuning.train",
    }
    (staging / TUNED_FILE).write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(out)
    size = sum(path.stat().st_size for path in out.iterdir()) / 2**20
    print(f"tuning: adapter written to {out} ({size:.1f} MiB) in {seconds / 60:.1f} min; "
          f"final loss {report['final_loss']}", flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description="Tune the generator's LoRA adapter on this shop's answers (CPU).")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="adapter folder (generator.yml local.adapter)")
    parser.add_argument("--hand", type=Path, default=TUNING_DIR / "answers.yml")
    parser.add_argument("--unanswerable", type=Path, default=TUNING_DIR / "unanswerable.yml")
    parser.add_argument("--orders", type=int, default=80, help="synthetic order examples")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--layers", type=int, default=10, help="adapt only the top N transformer layers (faster)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--dry-run", action="store_true", help="build and count the examples only")
    args = parser.parse_args()
    for path in (args.hand, args.unanswerable):
        if not Path(path).exists():
            raise SystemExit(f"tuning: {path} is missing (see docs/generator.md, 'Tuning the adapter')")
    train(args)


if __name__ == "__main__":
    main()
