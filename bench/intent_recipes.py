"""How the transformer intent classifier's recipe (epochs, ensemble members) was chosen, reproducibly, on data the
reported intent benchmark (bench/intent.py) does not score:

1. BANKING77's budget (bench.intent's --banking77-epochs-transformer): each candidate trains on 90 % of train.csv
   (a stratified, seeded split) and is scored on the other 10 %; test.csv is never read.
2. config.yml's `epochs` and `ensemble_size` for the project's own data: each candidate is scored on the first folds
   of bench.intent's seeded 5-fold split of data/nlu.yml (the folds on which bench.intent chooses the fallback
   threshold).

A candidate is written EPOCHS (one model) or EPOCHSxMEMBERS (an ensemble: "6x2" is two models of 6 epochs each). It
is the pipeline of config.yml with only `epochs` and `ensemble_size` changed, trained and served through Rasa in its
own worker process, as in bench.intent. The most accurate candidate is chosen; the result also gives one standard
error of that accuracy and the candidates within it, because with ~1,000 validation messages (BANKING77) or ~220 (the
project's folds) differences of less than that are within sampling noise. Candidates measured by earlier runs on the
same split are kept (each with its command and date) unless measured again, so one more candidate costs one run.
Writes bench/results/intent-recipes.json.

    python -m bench.intent_recipes [--banking77-epochs 6 9 12 6x2] [--project-epochs 10 30 50 80 120 50x2]
                                   [--only banking77|project]
"""

from __future__ import annotations

import argparse
import json
import math
import re
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
RECIPE = re.compile(r"([1-9][0-9]*)(?:x([1-9][0-9]*))?")


def recipe(text: str) -> str:
    """An argparse type: EPOCHS or EPOCHSxMEMBERS."""
    if not RECIPE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"'{text}' is not EPOCHS or EPOCHSxMEMBERS (for example 9 or 6x2)")
    return text


def overrides(candidate: str) -> Dict[str, int]:
    """The classifier options of a candidate: '9' is one model of 9 epochs, '6x2' two models of 6 epochs each."""
    match = RECIPE.fullmatch(candidate)
    assert match is not None
    return {"epochs": int(match.group(1)), "ensemble_size": int(match.group(2) or 1)}


def choose(candidates: Dict[str, Dict[str, Any]], examples: int) -> Dict[str, Any]:
    """The most accurate candidate, with one standard error of its accuracy and the candidates within it."""
    best = max(candidates, key=lambda name: candidates[name]["accuracy"])
    accuracy = candidates[best]["accuracy"]
    standard_error = math.sqrt(accuracy * (1 - accuracy) / examples)
    tied = [name for name in candidates if candidates[name]["accuracy"] >= accuracy - standard_error]
    return {"chosen": best, "standard_error": round(standard_error, 4), "within_one_standard_error": tied}


def banking77(work: Path, candidates: Sequence[str]) -> Dict[str, Any]:
    from sklearn.model_selection import train_test_split

    texts, intents = read_banking77("train")
    train_texts, val_texts, train_intents, val_intents = train_test_split(
        texts, intents, test_size=VALIDATION_FRACTION, stratify=intents, random_state=SEED)
    nlu = write_intent_nlu(work / "banking77-train90.yml", train_texts, train_intents)
    scored: Dict[str, Dict[str, Any]] = {}
    for candidate in candidates:
        print(f"== BANKING77 validation split, {candidate} epochs: training on {len(train_texts):,} messages",
              flush=True)
        _, trained, evaluated = train_and_evaluate(work, PIPELINE, overrides(candidate), nlu, val_texts,
                                                   f"recipes-banking77-{candidate}")
        predicted = [top_intent(entry) or "" for entry in evaluated["predictions"]]
        scored[candidate] = {**classification_metrics(val_intents, predicted), "train_s": trained["train_s"]}
        print(f"   validation accuracy {scored[candidate]['accuracy']}", flush=True)
    return {"train_examples": len(train_texts), "validation_examples": len(val_texts),
            "scored_examples": len(val_texts),
            "split": f"stratified {int(VALIDATION_FRACTION * 100)} % of train.csv, seed {SEED}", "candidates": scored}


def project(work: Path, candidates: Sequence[str]) -> Dict[str, Any]:
    examples, intents, folds = project_folds(work, PROJECT_FOLDS)
    dev = folds[:dev_fold_count(PROJECT_FOLDS)]
    gold = [intents[row] for fold in dev for row in fold["rows"]]
    scored: Dict[str, Dict[str, Any]] = {}
    for candidate in candidates:
        print(f"== data/nlu.yml folds 1-{len(dev)} of {PROJECT_FOLDS}, {candidate} epochs", flush=True)
        config = work / f"project-{candidate}.yml"
        write_config(config, PIPELINE, overrides(candidate))
        cv = run_worker({"kind": "cross_validation", "config": str(config), "out": str(work / f"project-{candidate}"),
                         "folds": dev, "extra_texts": [], "timing_samples": 0,
                         "classifier": PIPELINES[PIPELINE]["classifier"]}, work, f"recipes-project-{candidate}")
        predicted = [top_intent(entry) or "" for result in cv["folds"] for entry in result["predictions"]]
        scored[candidate] = {**classification_metrics(gold, predicted),
                             "train_s_per_fold": [result["train_s"] for result in cv["folds"]]}
        print(f"   accuracy {scored[candidate]['accuracy']}", flush=True)
    return {"examples": len(examples), "folds": PROJECT_FOLDS,
            "scored_on": f"folds 1-{len(dev)} ({len(gold)} examples)", "scored_examples": len(gold),
            "candidates": scored}


def merge(earlier: Dict[str, Any], now: Dict[str, Any]) -> Dict[str, Any]:
    """now's candidates added to (or replacing) those an earlier run measured on the same split."""
    same_split = all(earlier.get(key) == now.get(key) for key in ("split", "scored_on", "scored_examples"))
    if not same_split:
        return now
    return {**now, "candidates": {**earlier["candidates"], **now["candidates"]}}


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--banking77-epochs", type=recipe, nargs="+", default=["6", "9", "12", "6x2"])
    parser.add_argument("--project-epochs", type=recipe, nargs="+", default=["10", "30", "50", "80", "120", "50x2"])
    parser.add_argument("--only", choices=["banking77", "project"])
    args = parser.parse_args(argv)
    command = " ".join(["python -m bench.intent_recipes", *(argv or sys.argv[1:])])
    results: Dict[str, Any] = {"command": command, "pipeline": PIPELINES[PIPELINE]["config"]}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-intent-recipes-") as tmp:
        if args.only in (None, "banking77"):
            results["banking77"] = banking77(Path(tmp), args.banking77_epochs)
        if args.only in (None, "project"):
            results["project"] = project(Path(tmp), args.project_epochs)
    results["wall_s"] = round(time.perf_counter() - started)
    measured_at = timestamp()  # one value for the whole run: the report groups candidates by run
    previous = RESULTS_DIR / "intent-recipes.json"
    earlier = json.loads(previous.read_text()) if previous.exists() else {}
    for part in ("banking77", "project"):
        if part in results:
            for candidate in results[part]["candidates"].values():
                candidate.update(command=command, measured_at=measured_at)
            if part in earlier:
                results[part] = merge(earlier[part], results[part])
        elif part in earlier:
            results[part] = earlier[part]
        if part in results:
            results[part].update(choose(results[part]["candidates"], results[part]["scored_examples"]))
    write_results("intent-recipes", results)


if __name__ == "__main__":
    main()
