"""How well the bot understands customers' messages it never trained on, before and after "ask, don't refuse".

Data (bench/data/, written for this project; provenance in each file's header):
- customer_messages_tune.tsv: chooses the two thresholds (never trained on);
- customer_messages_heldout.tsv: the figures reported (never trained on, never used to choose anything).

For every message the bot's decision is simulated exactly as the running bot makes it from the parse result:
- direct: the classifier's best intent is at least FallbackClassifier's `threshold` and ahead of the second by
  its `ambiguity_threshold` (config.yml): the bot acts on that intent;
- otherwise `nlu_fallback`: the bot asks "Did you mean ...?" with up to shop.yml `understanding.max_options` skills
  (each at least `option_min_confidence`) when the best of them is at least `clarify_min_confidence`
  (actions/understanding.py), else it declines ("I can't help with that").
An in-scope message is *resolved* when acted on with the right intent, or when the right skill is among the
buttons of the question; an out-of-scope message is *declined* when the bot neither acts on a skill nor asks.

Both thresholds are chosen on the tune set by the best mean of in-scope resolved and out-of-scope declined (ties:
fewer questions). The "before" column is the model, data and settings of the commit before this work
(bench/before.py trains it beside this one), with its single threshold and no question.

Usage: python -m bench.understanding [--before REF] [--model models/shop.tar.gz]
Writes bench/results/understanding.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from bench import before as before_tree
from bench.common import read_tsv, write_results
from shop.settings import PROJECT_ROOT, read_config, understanding_policy

DATA = Path(__file__).resolve().parent / "data"
TUNE, HELDOUT = DATA / "customer_messages_tune.tsv", DATA / "customer_messages_heldout.tsv"
PARSER = Path(__file__).resolve().parent / "parse_messages.py"
# The commit before the work on issue 11 (order numbers, questions instead of refusals): the "before" column.
BASE_REF = "6e864d8"
DIRECT_GRID = [round(0.30 + 0.05 * i, 2) for i in range(14)]  # 0.30 .. 0.95
CLARIFY_GRID = [round(0.05 * i, 2) for i in range(1, 19)]  # 0.05 .. 0.90
OUT_OF_SCOPE = "out_of_scope"

Labelled = List[Tuple[str, str]]  # (intent, text)


def read_messages(path: Path) -> Labelled:
    return [(row["intent"], row["text"]) for row in read_tsv(path)]


def clarify_options() -> List[str]:
    """The skills a "Did you mean ...?" question can offer (actions/responses.yml `clarify.options`)."""
    catalogue = yaml.safe_load((PROJECT_ROOT / "actions" / "responses.yml").read_text(encoding="utf-8"))
    return list(catalogue["clarify"]["options"])


def fallback_settings(config_file: Path) -> Dict[str, float]:
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    step = next(step for step in config["pipeline"] if step["name"] == "FallbackClassifier")
    return {"threshold": float(step.get("threshold", 0.3)), "ambiguity_threshold": float(
        step.get("ambiguity_threshold", 0.1))}


def parse(model: Path, texts: Sequence[str], env: Optional[Dict[str, str]] = None) -> List[Dict[str, Any]]:
    """Each text's parse result from `model`, in a separate process (`env` may put other code first)."""
    with tempfile.TemporaryDirectory() as work:
        texts_file, out_file = Path(work) / "texts.json", Path(work) / "parsed.json"
        texts_file.write_text(json.dumps(list(texts)), encoding="utf-8")
        subprocess.run([sys.executable, str(PARSER), str(model), str(texts_file), str(out_file)], check=True, env=env)
        return json.loads(out_file.read_text(encoding="utf-8"))


def ranking(parsed: Dict[str, Any]) -> List[Tuple[str, float]]:
    """The classifier's own ranking, best first (FallbackClassifier's nlu_fallback entry removed)."""
    entries = [(entry["name"], float(entry["confidence"])) for entry in parsed.get("intent_ranking") or []
               if entry.get("name") != "nlu_fallback"]
    return sorted(entries, key=lambda entry: -entry[1])


def decide(entries: List[Tuple[str, float]], threshold: float, ambiguity: float, clarify: Optional[Dict[str, Any]],
           nameable: Sequence[str]) -> Tuple[str, List[str]]:
    """('direct', [intent]), ('clarify', options) or ('decline', []), as the bot decides for this ranking."""
    if entries and entries[0][1] >= threshold and (len(entries) < 2 or entries[0][1] - entries[1][1] >= ambiguity):
        return "direct", [entries[0][0]]
    if clarify:
        options = [name for name, confidence in entries
                   if name in nameable and confidence >= clarify["option_min_confidence"]]
        best = next((confidence for name, confidence in entries if name in nameable), 0.0)
        if options and best >= clarify["clarify_min_confidence"]:
            return "clarify", options[:clarify["max_options"]]
    return "decline", []


def score(messages: Labelled, rankings: List[List[Tuple[str, float]]], threshold: float, ambiguity: float,
          clarify: Optional[Dict[str, Any]], nameable: Sequence[str]) -> Dict[str, Any]:
    counts = {key: 0 for key in ("in_scope", "direct_right", "clarified", "clarified_right", "out_of_scope",
                                 "declined", "oos_clarified", "oos_acted")}
    for (gold, _), entries in zip(messages, rankings, strict=True):
        how, intents = decide(entries, threshold, ambiguity, clarify, nameable)
        if gold == OUT_OF_SCOPE:
            counts["out_of_scope"] += 1
            counts["declined"] += how == "decline" or (how == "direct" and intents == [OUT_OF_SCOPE])
            counts["oos_clarified"] += how == "clarify"
            counts["oos_acted"] += how == "direct" and intents != [OUT_OF_SCOPE]
        else:
            counts["in_scope"] += 1
            counts["direct_right"] += how == "direct" and intents == [gold]
            counts["clarified"] += how == "clarify"
            counts["clarified_right"] += how == "clarify" and gold in intents
    in_scope, oos = max(counts["in_scope"], 1), max(counts["out_of_scope"], 1)
    return {
        "in_scope_direct_accuracy": round(counts["direct_right"] / in_scope, 4),
        "in_scope_resolved": round((counts["direct_right"] + counts["clarified_right"]) / in_scope, 4),
        "in_scope_asked_share": round(counts["clarified"] / in_scope, 4),
        "out_of_scope_declined": round(counts["declined"] / oos, 4),
        "out_of_scope_asked_share": round(counts["oos_clarified"] / oos, 4),
        "out_of_scope_acted_on_share": round(counts["oos_acted"] / oos, 4),
        "counts": counts,
    }


def choose(messages: Labelled, rankings: List[List[Tuple[str, float]]], ambiguity: float, base: Dict[str, Any],
           nameable: Sequence[str]) -> Dict[str, Any]:
    """The (threshold, clarify_min_confidence) pair with the best mean of resolved and declined; ties: fewer
    questions to in-scope messages, then the higher thresholds."""
    best: Optional[Tuple[Tuple[float, ...], Dict[str, Any]]] = None
    for threshold in DIRECT_GRID:
        for clarify_min in CLARIFY_GRID:
            if clarify_min > threshold:
                continue
            clarify = {**base, "clarify_min_confidence": clarify_min}
            result = score(messages, rankings, threshold, ambiguity, clarify, nameable)
            key = (round((result["in_scope_resolved"] + result["out_of_scope_declined"]) / 2, 4),
                   -result["in_scope_asked_share"], threshold, clarify_min)
            if best is None or key > best[0]:
                best = (key, {"threshold": threshold, "clarify_min_confidence": clarify_min, "tune": result})
    assert best is not None
    return best[1]


def misses(messages: Labelled, rankings: List[List[Tuple[str, float]]], threshold: float, ambiguity: float,
           clarify: Dict[str, Any], nameable: Sequence[str]) -> List[Dict[str, Any]]:
    """The held-out messages the bot gets wrong, for reading (not for tuning)."""
    wrong = []
    for (gold, text), entries in zip(messages, rankings, strict=True):
        how, intents = decide(entries, threshold, ambiguity, clarify, nameable)
        right = (how == "decline" or intents == [OUT_OF_SCOPE]) if gold == OUT_OF_SCOPE else gold in intents
        if not right:
            wrong.append({"text": text, "gold": gold, "decision": how, "intents": intents,
                          "top": [[name, round(confidence, 3)] for name, confidence in entries[:3]]})
    return wrong


def evaluate(model: Path, config_file: Path, clarify: Optional[Dict[str, Any]], tune: Labelled, heldout: Labelled,
             nameable: Sequence[str], env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    print(f"understanding: parsing {len(tune) + len(heldout)} messages with {model}", flush=True)
    parsed = parse(model, [text for _, text in tune + heldout], env)
    rankings = [ranking(result) for result in parsed]
    tune_rankings, heldout_rankings = rankings[:len(tune)], rankings[len(tune):]
    fallback = fallback_settings(config_file)
    result: Dict[str, Any] = {"model": str(model.relative_to(PROJECT_ROOT)), "fallback": fallback,
                              "clarify": clarify}
    result["heldout"] = score(heldout, heldout_rankings, fallback["threshold"], fallback["ambiguity_threshold"],
                              clarify, nameable)
    result["tune"] = score(tune, tune_rankings, fallback["threshold"], fallback["ambiguity_threshold"], clarify,
                           nameable)
    if clarify is not None:
        chosen = choose(tune, tune_rankings, fallback["ambiguity_threshold"], clarify, nameable)
        chosen_clarify = {**clarify, "clarify_min_confidence": chosen["clarify_min_confidence"]}
        chosen["heldout"] = score(heldout, heldout_rankings, chosen["threshold"], fallback["ambiguity_threshold"],
                                  chosen_clarify, nameable)
        chosen["matches_configuration"] = (chosen["threshold"] == fallback["threshold"]
                                           and chosen["clarify_min_confidence"] == clarify["clarify_min_confidence"])
        result["chosen_on_tune"] = chosen
        result["heldout_misses"] = misses(heldout, heldout_rankings, fallback["threshold"],
                                          fallback["ambiguity_threshold"], clarify, nameable)
    return result


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=PROJECT_ROOT / "models" / "shop.tar.gz")
    parser.add_argument("--before", default=BASE_REF, help="the commit to compare with (default: %(default)s)")
    parser.add_argument("--no-before", action="store_true", help="only the current model")
    args = parser.parse_args(argv)
    tune, heldout = read_messages(TUNE), read_messages(HELDOUT)
    nameable = clarify_options()
    policy = understanding_policy(read_config())
    clarify = {"clarify_min_confidence": policy.clarify_min_confidence,
               "option_min_confidence": policy.option_min_confidence, "max_options": policy.max_options}
    results: Dict[str, Any] = {
        "data": {"tune": str(TUNE.relative_to(PROJECT_ROOT)), "heldout": str(HELDOUT.relative_to(PROJECT_ROOT)),
                 "tune_messages": len(tune), "heldout_messages": len(heldout),
                 "heldout_out_of_scope": sum(intent == OUT_OF_SCOPE for intent, _ in heldout)},
        "command": "python -m bench.understanding" + (f" {' '.join(argv)}" if argv else ""),
    }
    results["after"] = evaluate(args.model, PROJECT_ROOT / "config.yml", clarify, tune, heldout, nameable)
    if not args.no_before:
        old = before_tree.prepare(args.before)
        results["before"] = {"ref": args.before, "sha": old.sha, **evaluate(
            old.model, old.tree / "config.yml", None, tune, heldout, nameable, env=old.environment())}
    write_results("understanding", results)
    after = results["after"]["heldout"]
    print(f"held-out: in-scope resolved {after['in_scope_resolved']:.1%} "
          f"(directly {after['in_scope_direct_accuracy']:.1%}), "
          f"out-of-scope declined {after['out_of_scope_declined']:.1%}")
    if "before" in results:
        old_figures = results["before"]["heldout"]
        print(f"before:   in-scope resolved {old_figures['in_scope_resolved']:.1%}, "
              f"out-of-scope declined {old_figures['out_of_scope_declined']:.1%}")
    chosen = results["after"]["chosen_on_tune"]
    if not chosen["matches_configuration"]:
        print(f"note: the tune set prefers threshold {chosen['threshold']} and clarify_min_confidence "
              f"{chosen['clarify_min_confidence']} (config.yml / shop.yml differ)")


if __name__ == "__main__":
    main()
