"""How the transformer intent classifier's epoch settings were chosen, reproducibly, on data the reported intent
benchmark (bench/intent.py) does not score:

1. BANKING77's epoch budget (bench.intent's --banking77-epochs-transformer): each candidate trains on 90 % of
   train.csv (a stratified, seeded split) and is scored on the other 10 %; test.csv is never read.
2. config.yml's `epochs` for the project's own data: each candidate is scored on the first folds of bench.intent's
   seeded 5-fold split of data/nlu.yml (the folds on which bench.intent also chooses the fallback threshold).

Every candidate is the pipeline of config.yml with only `epochs` changed, trained and served through Rasa in its own
worker process, as in bench.intent. The most accurate candidate is chosen; the result also gives one standard error
of that accuracy and the candidates within it, because with ~1,000 validation messages (BANKING77) or ~220 (the
project's folds) differences of less than that are within sampling noise. Writes bench/results/intent-recipes.json.

    python -m bench.intent_recipes [--banking77-epochs 6 9 12] [--project-epochs 10 30 50 80 120]
                                   [--only banking77|project]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

from bench.common import RESULTS_DIR, timestamp, write_results
from bench.intent import (
    PIPELINES,
    SEED,
    classification_metrics,
    dev_fold_count,
    project_folds,
    read_banking77,
    run_worker,
    top_intent,
    train_and_evaluate,
    write_config,
    write_intent_nlu,
)

PIPELINE = "transformer"
VALIDATION_FRACTION = 0.1
PROJECT_FOLDS = 5


def choose(candidates: Dict[int, Dict[str, Any]], examples: int) -> Dict[str, Any]:
    """The most accurate candidate, with one standard error of its accuracy and the candidates within it."""
    best = max(candidates, key=lambda epochs: candidates[epochs]["accuracy"])
    accuracy = candidates[best]["accuracy"]
    standard_error = math.sqrt(accuracy * (1 - accuracy) / examples)
    tied = [epochs for epochs in candidates if candidates[epochs]["accuracy"] >= accuracy - standard_error]
    return {"chosen": best, "standard_error": round(standard_error, 4), "within_one_standard_error": sorted(tied)}


def banking77(work: Path, candidates: Sequence[int]) -> Dict[str, Any]:
    from sklearn.model_selection import train_test_split

    texts, intents = read_banking77("train")
    train_texts, val_texts, train_intents, val_intents = train_test_split(
        texts, intents, test_size=VALIDATION_FRACTION, stratify=intents, random_state=SEED)
    nlu = write_intent_nlu(work / "banking77-train90.yml", train_texts, train_intents)
    scored: Dict[int, Dict[str, Any]] = {}
    for epochs in candidates:
        print(f"== BANKING77 validation split, {epochs} epochs: training on {len(train_texts):,} messages", flush=True)
        _, trained, evaluated = train_and_evaluate(work, PIPELINE, {"epochs": epochs}, nlu, val_texts,
                                                   f"recipes-banking77-{epochs}")
        predicted = [top_intent(entry) or "" for entry in evaluated["predictions"]]
        scored[epochs] = {**classification_metrics(val_intents, predicted), "train_s": trained["train_s"]}
        print(f"   validation accuracy {scored[epochs]['accuracy']}", flush=True)
    return {"train_examples": len(train_texts), "validation_examples": len(val_texts),
            "split": f"stratified {int(VALIDATION_FRACTION * 100)} % of train.csv, seed {SEED}",
            "candidates": {str(epochs): result for epochs, result in scored.items()},
            **choose(scored, len(val_texts))}


def project(work: Path, candidates: Sequence[int]) -> Dict[str, Any]:
    examples, intents, folds = project_folds(work, PROJECT_FOLDS)
    dev = folds[:dev_fold_count(PROJECT_FOLDS)]
    gold = [intents[row] for fold in dev for row in fold["rows"]]
    scored: Dict[int, Dict[str, Any]] = {}
    for epochs in candidates:
        print(f"== data/nlu.yml folds 1-{len(dev)} of {PROJECT_FOLDS}, {epochs} epochs", flush=True)
        config = work / f"project-{epochs}.yml"
        write_config(config, PIPELINE, {"epochs": epochs})
        cv = run_worker({"kind": "cross_validation", "config": str(config), "out": str(work / f"project-{epochs}"),
                         "folds": dev, "extra_texts": [], "timing_samples": 0,
                         "classifier": PIPELINES[PIPELINE]["classifier"]}, work, f"recipes-project-{epochs}")
        predicted = [top_intent(entry) or "" for result in cv["folds"] for entry in result["predictions"]]
        scored[epochs] = {**classification_metrics(gold, predicted),
                          "train_s_per_fold": [result["train_s"] for result in cv["folds"]]}
        print(f"   accuracy {scored[epochs]['accuracy']}", flush=True)
    return {"examples": len(examples), "folds": PROJECT_FOLDS,
            "scored_on": f"folds 1-{len(dev)} ({len(gold)} examples)",
            "candidates": {str(epochs): result for epochs, result in scored.items()}, **choose(scored, len(gold))}


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--banking77-epochs", type=int, nargs="+", default=[6, 9, 12])
    parser.add_argument("--project-epochs", type=int, nargs="+", default=[10, 30, 50, 80, 120])
    parser.add_argument("--only", choices=["banking77", "project"])
    args = parser.parse_args(argv)
    results: Dict[str, Any] = {"command": " ".join(["python -m bench.intent_recipes", *(argv or sys.argv[1:])]),
                               "pipeline": PIPELINES[PIPELINE]["config"]}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-intent-recipes-") as tmp:
        if args.only in (None, "banking77"):
            results["banking77"] = banking77(Path(tmp), args.banking77_epochs)
        if args.only in (None, "project"):
            results["project"] = project(Path(tmp), args.project_epochs)
    results["wall_s"] = round(time.perf_counter() - started)
    previous = RESULTS_DIR / "intent-recipes.json"
    if args.only and previous.exists():  # --only updates one part and keeps the other, with its own command
        earlier = json.loads(previous.read_text())
        other = "project" if args.only == "banking77" else "banking77"
        if other in earlier:
            results[other] = {**earlier[other], "command": earlier[other].get("command", earlier["command"]),
                              "measured_at": earlier[other].get("measured_at", earlier["measured_at"])}
    for part in ("banking77", "project"):
        if part in results and "command" not in results[part]:
            results[part].update(command=results["command"], measured_at=timestamp())
    write_results("intent-recipes", results)


if __name__ == "__main__":
    main()
