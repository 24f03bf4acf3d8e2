"""The learning loop, measured: does reviewing the inbox of misunderstood messages and retraining make the bot
understand customers it never saw better?

Data (bench/data/, provenance in each file's header):
- customer_messages_heldout.tsv: the fixed test set, 375 customer messages with their intents (121 out of scope),
  written for this project, never trained on and never used to choose anything; the same file
  `python -m bench.understanding` reports on. Nothing of it enters the inbox or the training data here.
- learning_loop_traffic.tsv: simulated traffic, 618 new phrasings written for this benchmark, each with the intent it
  should route to. `wording_check` stops the run if a line is not new wording (identical after normalising, or a
  character similarity of 0.8 or more, to a line of the test set or data/nlu.yml; cosine above 0.9 to a test line).

Procedure:
(a) the current model (models/shop.tar.gz when scripts/train.sh's fingerprint says it was trained from the current
    config and data, else one trained here the same way) parses the test set: accuracy before;
(b) it parses the traffic; each message becomes a conversation in a temporary SQLite tracker store (Rasa's own
    SQLTrackerStore), the bot answering as it would (bench.understanding.decide: act, "Did you mean ...?", or decline)
    and the customer reacting as customers do when misunderstood: a wrong answer gets the request repeated and a
    request for a person, a question without the right option gets "none of those" and a person, a refusal of an
    in-scope request gets the request repeated and a person; out-of-scope customers just leave, so a skill started
    for them goes unnoticed. `analytics.inbox.export` reads that store like a real one and writes the inbox; an
    automatic reviewer stands in for the person: every example whose traffic label is known goes under that label
    (`--review correct`, default), or only examples whose suggested intent was already right are kept
    (`--review keep-right`); lines it cannot label (the customers' "none of those") are deleted.
    `analytics.inbox.accept` merges the reviewed file into a temporary copy of data/nlu.yml and
    `rasa data validate --fail-on-warnings` checks the copy;
(c) `rasa train` on the copy (config.yml, data/rules.yml, data/stories.yml, as scripts/train.sh trains);
(d) the retrained model parses the test set: accuracy after.
With --seeds, (c) and (d) are repeated with other random_seed values of the intent classifier, each with a before
model trained here on the unchanged data, to see the change against training noise.

Accuracy is the classifier's best intent (nlu_fallback left out) against the label, overall and on in-scope
messages; the bot's own decisions (acted on correctly at once, resolved after one question, out-of-scope declined)
are bench.understanding's measures with config.yml's and shop.yml's thresholds. Messages that changed from wrong
to right and back are counted, with McNemar's exact test on them.

Usage: python -m bench.learning_loop [--review correct|keep-right] [--seeds 42,43] [--retrain-before] [--keep DIR]
Writes bench/results/learning-loop.json (about 10 minutes on 2 cores for one seed: one training, two parses; each
further seed, or --retrain-before, adds a training of about 6 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from analytics import inbox
from analytics.conversations import read_conversations
from bench.common import read_tsv, write_results
from bench.understanding import clarify_options, decide, fallback_settings, parse, ranking, score
from shop.servers import RASA
from shop.settings import PROJECT_ROOT, read_config, understanding_policy

DATA = Path(__file__).resolve().parent / "data"
TEST, TRAFFIC = DATA / "customer_messages_heldout.tsv", DATA / "learning_loop_traffic.tsv"
CONFIG, DOMAIN = PROJECT_ROOT / "config.yml", PROJECT_ROOT / "domain.yml"
NLU, RULES, STORIES = (PROJECT_ROOT / "data" / name for name in ("nlu.yml", "rules.yml", "stories.yml"))
MODEL = PROJECT_ROOT / "models" / "shop.tar.gz"
OUT_OF_SCOPE = "out_of_scope"

# What a simulated customer says when the bot got it wrong (fixed parse results: these are not under test).
ASK_FOR_PERSON = ["no, that's not what I asked. can I talk to a person", "that's wrong, let me speak to someone",
                  "not what I meant, I want a human"]
NONE_OF_THOSE = ["none of those", "neither", "no, something else"]

Labelled = List[Tuple[str, str]]


def read_messages(path: Path) -> Labelled:
    return [(row["intent"], row["text"]) for row in read_tsv(path)]


# ------------------------------------------------------------------------------------------------ models
def fingerprint(config: str = "config.yml") -> str:
    """scripts/train.sh's fingerprint of what the model is trained from (models/shop.tar.gz.sha256), by the same
    shell commands."""
    script = ('inputs=("$CONFIG" domain.yml data/nlu.yml data/rules.yml data/stories.yml data/tone/*.tsv '
              'requirements/*.lock); mapfile -t components < <(find custom_components -name "*.py" -o -name '
              '"*.safetensors" | sort); (echo "$CONFIG"; cat "${inputs[@]}" "${components[@]}") | sha256sum | '
              'cut -d" " -f1')
    return subprocess.run(["bash", "-c", script], cwd=PROJECT_ROOT, env={**os.environ, "CONFIG": config},
                          check=True, capture_output=True, text=True).stdout.strip()


CLASSIFIER = "TransformerIntentClassifier"


def classifier_seed(config: Path = CONFIG) -> int:
    steps = yaml.safe_load(config.read_text(encoding="utf-8"))["pipeline"]
    step = next(step for step in steps if step["name"].endswith(CLASSIFIER))
    return int(step.get("random_seed", 42))


def config_with_seed(seed: int, work: Path) -> Path:
    """config.yml, or a copy of it whose intent classifier trains with another random_seed."""
    if seed == classifier_seed():
        return CONFIG
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    next(step for step in config["pipeline"] if step["name"].endswith(CLASSIFIER))["random_seed"] = seed
    path = work / f"config-seed{seed}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def train(nlu: Path, out: Path, name: str, log: Path, config: Path = CONFIG) -> float:
    """`rasa train` as scripts/train.sh runs it, with `nlu` as the NLU data; returns the seconds it took."""
    command = [RASA, "train", "--config", str(config), "--domain", str(DOMAIN), "--data", str(nlu), str(RULES),
               str(STORIES), "--out", str(out), "--fixed-model-name", name, "--force"]
    print(f"learning loop: training {name} (about 5 minutes on 2 cores; log: {log})", flush=True)
    started = time.monotonic()
    with log.open("w") as stream:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=stream, stderr=subprocess.STDOUT)
        while process.poll() is None:
            time.sleep(5)
            elapsed = time.monotonic() - started
            if int(elapsed) % 60 < 5:
                print(f"  training {name}: {elapsed:.0f} s", flush=True)
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").replace("\r", "\n").splitlines()[-30:])
        raise SystemExit(f"learning loop: rasa train failed ({process.returncode}):\n{tail}")
    seconds = time.monotonic() - started
    print(f"  trained {name} in {seconds:.0f} s", flush=True)
    return seconds


# --------------------------------------------------------------------------------------------- measuring
def accuracy(messages: Labelled, rankings: List[List[Tuple[str, float]]]) -> Dict[str, Any]:
    right = [bool(entries) and entries[0][0] == gold for (gold, _), entries in zip(messages, rankings, strict=True)]
    in_scope = [ok for (gold, _), ok in zip(messages, right, strict=True) if gold != OUT_OF_SCOPE]
    oos = [ok for (gold, _), ok in zip(messages, right, strict=True) if gold == OUT_OF_SCOPE]
    per_intent: Dict[str, List[bool]] = {}
    for (gold, _), ok in zip(messages, right, strict=True):
        per_intent.setdefault(gold, []).append(ok)
    return {"overall": round(float(np.mean(right)), 4), "in_scope": round(float(np.mean(in_scope)), 4),
            "out_of_scope": round(float(np.mean(oos)), 4) if oos else None,
            "counts": {"right": sum(right), "messages": len(right), "in_scope_right": sum(in_scope),
                       "in_scope": len(in_scope), "out_of_scope_right": sum(oos), "out_of_scope": len(oos)},
            "per_intent": {intent: f"{sum(oks)}/{len(oks)}" for intent, oks in sorted(per_intent.items())},
            "right": right}


def mcnemar(before: Sequence[bool], after: Sequence[bool]) -> Dict[str, Any]:
    """Messages wrong before and right after (fixed) and the reverse (broken); exact two-sided McNemar p."""
    from scipy.stats import binomtest

    fixed = sum(not old and new for old, new in zip(before, after, strict=True))
    broken = sum(old and not new for old, new in zip(before, after, strict=True))
    p = binomtest(fixed, fixed + broken, 0.5).pvalue if fixed + broken else 1.0
    return {"fixed": fixed, "broken": broken, "mcnemar_exact_p": round(float(p), 4)}


class Thresholds:
    def __init__(self) -> None:
        self.fallback = fallback_settings(CONFIG)
        policy = understanding_policy(read_config())
        self.clarify = {"clarify_min_confidence": policy.clarify_min_confidence,
                        "option_min_confidence": policy.option_min_confidence, "max_options": policy.max_options}
        self.nameable = clarify_options()

    def decide(self, entries: List[Tuple[str, float]]) -> Tuple[str, List[str]]:
        return decide(entries, self.fallback["threshold"], self.fallback["ambiguity_threshold"], self.clarify,
                      self.nameable)

    def score(self, messages: Labelled, rankings: List[List[Tuple[str, float]]]) -> Dict[str, Any]:
        return score(messages, rankings, self.fallback["threshold"], self.fallback["ambiguity_threshold"],
                     self.clarify, self.nameable)


def evaluate(test: Labelled, parsed: List[Dict[str, Any]], thresholds: Thresholds) -> Dict[str, Any]:
    rankings = [ranking(result) for result in parsed]
    return {"accuracy": accuracy(test, rankings), "bot": thresholds.score(test, rankings),
            "top": [entries[0][0] if entries else None for entries in rankings]}


# ------------------------------------------------------------------------------------------- simulation
def _parse_data(text: str, intent: str, confidence: float, ranking_entries=None) -> Dict[str, Any]:
    entries = ranking_entries or [{"name": intent, "confidence": confidence}]
    return {"text": text, "intent": {"name": intent, "confidence": confidence}, "entities": [],
            "intent_ranking": entries}


def simulate(traffic: Labelled, parsed: List[Dict[str, Any]], thresholds: Thresholds, url_db: Path
             ) -> Dict[str, Any]:
    """Writes one conversation per traffic message into a SQLite tracker store (Rasa's SQLTrackerStore); returns
    how the bot handled each message (decision, whether it was right)."""
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    store = SQLTrackerStore(Domain.load(str(DOMAIN)), dialect="sqlite", db=str(url_db))
    clock = [time.time() - 2 * 86400]
    outcomes = []

    def tick(step: float = 5.0) -> float:
        clock[0] += step
        return clock[0]

    def user(text: str, parse_data: Dict[str, Any]) -> UserUttered:
        return UserUttered(text, parse_data["intent"], parse_data.get("entities") or [], parse_data, timestamp=tick())

    def bot(text: str, **metadata: Any) -> BotUttered:
        return BotUttered(text, metadata=metadata, timestamp=tick(1.0))

    def act(name: str) -> ActionExecuted:
        return ActionExecuted(name, timestamp=tick(0.5))

    def answer(entries: List[Tuple[str, float]]) -> Tuple[str, List[str], list]:
        how, intents = thresholds.decide(entries)
        if how == "direct" and intents[0] != OUT_OF_SCOPE:
            return how, intents, [act(f"skill_{intents[0]}"), bot(f"(the {intents[0]} skill answers)"),
                                  act("action_listen")]
        if how == "clarify":
            return how, intents, [act("action_fallback"), bot("Did you mean one of these?", clarification=True,
                                                              message_name="clarify"), act("action_listen")]
        return "decline", [], [act("action_fallback"), bot("Sorry, I can't help with that.",
                                                           message_name="out_of_scope"), act("action_listen")]

    def person(index: int, texts: List[str]) -> list:
        text = texts[index % len(texts)]
        return [user(text, _parse_data(text, "human_handoff", 0.99)), act("action_handoff"),
                bot("I've passed this to a colleague.", message_name="handoff_created"), act("action_listen")]

    for index, ((gold, text), result) in enumerate(zip(traffic, parsed, strict=True)):
        clock[0] += 60
        entries = ranking(result)
        events: list = [act("action_session_start"), act("action_listen"), user(text, result)]
        how, intents, reply = answer(entries)
        events += reply
        right = (how == "decline" or intents == [OUT_OF_SCOPE]) if gold == OUT_OF_SCOPE else \
            (how == "direct" and intents == [gold]) or (how == "clarify" and gold in intents)
        if gold == OUT_OF_SCOPE:  # whatever the bot said, this customer leaves: a wrong answer goes unnoticed
            pass
        elif how == "clarify" and gold in intents:  # the customer clicks the right button
            events += [user(f"/{gold}", _parse_data(f"/{gold}", gold, 1.0)), act(f"skill_{gold}"),
                       bot(f"(the {gold} skill answers)"), act("action_listen")]
        elif how == "clarify":  # none of the options: "none of those", then a person
            text_none = NONE_OF_THOSE[index % len(NONE_OF_THOSE)]
            events += [user(text_none, _parse_data(text_none, "nlu_fallback", 0.8, [
                {"name": "nlu_fallback", "confidence": 0.8}, {"name": "deny", "confidence": 0.5}])),
                act("action_fallback"), bot("Shall I pass you to a person?", message_name="offer_handoff"),
                act("action_listen"), user("yes", _parse_data("yes", "affirm", 0.99)), act("action_handoff"),
                bot("I've passed this to a colleague.", message_name="handoff_created"), act("action_listen")]
        elif not right:  # acted wrongly, or declined an in-scope request: said again, then a person
            events += [user(text, result), *answer(entries)[2], *person(index, ASK_FOR_PERSON)]
        tracker = DialogueStateTracker.from_events(f"traffic-{index:04d}", events)
        asyncio.run(store.save(tracker))
        outcomes.append({"gold": gold, "text": text, "decision": how, "intents": intents, "right": right})
    store.engine.dispose()
    return {"outcomes": outcomes}


# --------------------------------------------------------------------------------------------- reviewer
def review(inbox_file: Path, labels: Dict[str, str], mode: str, out: Path) -> Dict[str, Any]:
    """The automatic reviewer: the traffic's labels decide which examples stay and under which intent."""
    data = yaml.safe_load(inbox_file.read_text(encoding="utf-8"))
    kept: Dict[str, List[str]] = {}
    counts = Counter()
    for block in data.get("nlu") or []:
        suggested = block["intent"]
        for line in block["examples"].splitlines():
            example = line[1:].strip()
            gold = labels.get(inbox.example_key(example))
            if gold is None:
                counts["deleted, no label (customer follow-ups)"] += 1
                continue
            counts["suggestion right" if gold == suggested else "suggestion wrong"] += 1
            if mode == "correct" or gold == suggested:
                kept.setdefault(gold, []).append(example)
            else:
                counts["deleted, suggestion wrong"] += 1
    lines = ['version: "3.1"', "nlu:"]
    for intent, examples in kept.items():
        lines += [f"- intent: {intent}", "  examples: |", *(f"    - {example}" for example in examples)]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"mode": mode, "counts": dict(counts), "kept": sum(len(examples) for examples in kept.values()),
            "kept_per_intent": {intent: len(examples) for intent, examples in sorted(kept.items())}}


def inbox_quality(result: inbox.ExportResult, labels: Dict[str, str], outcomes: List[Dict[str, Any]]
                  ) -> Dict[str, Any]:
    """How well the inbox found the misunderstood traffic, and how good its clusters and suggestions were."""
    flagged_keys = {item.key for item in result.items}
    order_numbers = inbox._order_numbers()
    key_of = [inbox.example_key(inbox.annotate(outcome["text"], order_numbers)) for outcome in outcomes]
    wrong = [key for key, outcome in zip(key_of, outcomes, strict=True) if not outcome["right"]]
    right = [key for key, outcome in zip(key_of, outcomes, strict=True) if outcome["right"]]
    purity_hits, labelled = 0, 0
    right = Counter()
    by_reaction_only = Counter()
    for cluster in result.clusters:
        golds = [labels[item.key] for item in cluster.items if item.key in labels]
        if not golds:
            continue
        purity_hits += Counter(golds).most_common(1)[0][1]
        labelled += len(golds)
        for item in cluster.items:
            if item.key not in labels:
                continue
            gold = labels[item.key]
            guess = item.guesses.most_common(1)
            right["suggested (auto)"] += cluster.suggested == gold
            right["nearest centroid of the cluster"] += cluster.nearest[0][0] == gold
            right["classifier's guess for the message"] += bool(guess) and guess[0][0] == gold
            if set(item.reasons) <= {inbox.REPHRASED, inbox.HANDOFF}:
                by_reaction_only["examples"] += 1
                by_reaction_only["suggested (auto) right"] += cluster.suggested == gold
                by_reaction_only["classifier's guess right"] += bool(guess) and guess[0][0] == gold
    reasons = Counter(reason for item in result.items for reason in item.reasons)
    return {
        "traffic_misunderstood": len(wrong),
        "misunderstood_found": sum(key in flagged_keys for key in wrong),
        "understood_but_flagged": sum(key in flagged_keys for key in right),
        "flagged_messages": result.flagged, "distinct": len(result.items), "clusters": len(result.clusters),
        "cluster_sizes": sorted((cluster.size for cluster in result.clusters), reverse=True),
        "reasons_distinct_messages": dict(reasons.most_common()),
        "cluster_purity": round(purity_hits / labelled, 4) if labelled else None,
        "suggestion_right_per_example": {name: round(count / labelled, 4) for name, count in right.items()}
        if labelled else {},
        "flagged_only_by_the_customers_reaction": dict(by_reaction_only),
        "labelled_examples": labelled,
    }


WORDING_CHARACTER_LIMIT = 0.8  # difflib ratio of normalised texts: at or above, the wording is the same
WORDING_TEST_COSINE_LIMIT = 0.9  # all-MiniLM-L6-v2 cosine to a test line: above, too close to the test set


def _character_similarity(text: str, others: List[str]) -> Tuple[float, int]:
    best, where = 0.0, -1
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(text)
    for index, other in enumerate(others):
        matcher.set_seq1(other)
        if matcher.real_quick_ratio() > best and matcher.quick_ratio() > best:
            ratio = matcher.ratio()
            if ratio > best:
                best, where = ratio, index
    return best, where


def wording_check(traffic: Labelled, test: Labelled, encoder: inbox.Encoder) -> Dict[str, Any]:
    """The traffic must be new wording: no line identical (normalised) to, or with a character similarity of
    WORDING_CHARACTER_LIMIT or more to, a line of the test set or data/nlu.yml, and none closer than
    WORDING_TEST_COSINE_LIMIT to a test line in the encoder's space. Stops the benchmark otherwise."""
    nlu_examples = [inbox.plain_text(example) for examples in inbox.read_nlu_examples(NLU).values()
                    for example in examples]
    traffic_texts = [text for _, text in traffic]
    traffic_normalised = [inbox.normalise(text) for text in traffic_texts]
    result: Dict[str, Any] = {"character_limit": WORDING_CHARACTER_LIMIT,
                              "test_cosine_limit": WORDING_TEST_COSINE_LIMIT}
    problems = []
    for name, others in (("test set", [text for _, text in test]), ("data/nlu.yml", nlu_examples)):
        others_normalised = [inbox.normalise(text) for text in others]
        cosine = encoder(traffic_texts) @ encoder(others).T
        characters = [_character_similarity(text, others_normalised) for text in traffic_normalised]
        for index, (ratio, where) in enumerate(characters):
            if ratio >= WORDING_CHARACTER_LIMIT:
                problems.append(f"{traffic_texts[index]!r} ~ {others[where]!r} ({name}, characters {ratio:.2f})")
            if name == "test set" and cosine[index].max() > WORDING_TEST_COSINE_LIMIT:
                problems.append(f"{traffic_texts[index]!r} ~ {others[int(cosine[index].argmax())]!r} ({name}, "
                                f"cosine {cosine[index].max():.3f})")
        closest = int(np.argmax([ratio for ratio, _ in characters]))
        result[name] = {
            "max_character_similarity": round(characters[closest][0], 3),
            "closest_in_characters": [traffic_texts[closest], others[characters[closest][1]]],
            "max_cosine": round(float(cosine.max()), 3),
            "closest_in_meaning": [traffic_texts[int(cosine.max(axis=1).argmax())],
                                   others[int(cosine[int(cosine.max(axis=1).argmax())].argmax())]],
            "traffic_lines_with_cosine_above_0.9": int((cosine.max(axis=1) > 0.9).sum()),
        }
    if problems:
        raise SystemExit(f"learning loop: {TRAFFIC.name} is not new wording ({len(problems)} lines):\n  "
                         + "\n  ".join(problems[:20]))
    return result


# ------------------------------------------------------------------------------------------------- main
def retrain_and_measure(seed: int, nlu_copy: Path, test: Labelled, thresholds: Thresholds, work: Path,
                        current: Dict[str, Any], retrain_before: bool) -> Dict[str, Any]:
    """(c) and (d) for one random_seed of the intent classifier: before (the current model for config.yml's seed,
    unless `retrain_before`; else one trained here on the unchanged data) and after (trained on the copy with the
    accepted examples)."""
    config = config_with_seed(seed, work)
    timings: Dict[str, float] = {}
    reproduced = None
    if retrain_before or seed != classifier_seed():
        timings["train_before_s"] = round(train(NLU, work / "models", f"before-seed{seed}",
                                                work / f"train-before-seed{seed}.log", config))
        print(f"learning loop: parsing the test set with the before model of seed {seed}", flush=True)
        before = evaluate(test, parse(work / "models" / f"before-seed{seed}.tar.gz", [text for _, text in test]),
                          thresholds)
        if seed == classifier_seed():  # the same training as the current model's: does it give the same model?
            reproduced = round(float(np.mean([a == b for a, b in zip(before["top"], current["top"], strict=True)])),
                               4)
        current = before
    timings["train_after_s"] = round(train(nlu_copy, work / "models", f"after-seed{seed}",
                                           work / f"train-after-seed{seed}.log", config))
    print(f"learning loop: parsing the test set with the retrained model of seed {seed}", flush=True)
    after = evaluate(test, parse(work / "models" / f"after-seed{seed}.tar.gz", [text for _, text in test]),
                     thresholds)
    in_scope = [gold != OUT_OF_SCOPE for gold, _ in test]
    before_right, after_right = current["accuracy"]["right"], after["accuracy"]["right"]
    changes = {"all": mcnemar(before_right, after_right),
               "in_scope": mcnemar([ok for ok, keep in zip(before_right, in_scope, strict=True) if keep],
                                   [ok for ok, keep in zip(after_right, in_scope, strict=True) if keep])}
    run = {"seed": seed, "config": config.name if config == CONFIG else f"config.yml with random_seed {seed}",
           "before": _without_right(current), "after": _without_right(after), "changes": changes,
           "timings_s": timings}
    if reproduced is not None:
        run["before_retrained_agrees_with_current_model"] = reproduced
    b, a = run["before"]["accuracy"], run["after"]["accuracy"]
    print(f"  seed {seed}: test set accuracy {b['overall']:.1%} -> {a['overall']:.1%} overall, "
          f"{b['in_scope']:.1%} -> {a['in_scope']:.1%} in scope ({changes['all']['fixed']} fixed, "
          f"{changes['all']['broken']} broken)", flush=True)
    return run


def _without_right(evaluation: Dict[str, Any]) -> Dict[str, Any]:
    return {"accuracy": {key: value for key, value in evaluation["accuracy"].items() if key != "right"},
            "bot": evaluation["bot"]}  # without the per-message lists


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--review", choices=("correct", "keep-right"), default="correct",
                        help="correct: every labelled example under its label; keep-right: only examples whose "
                             "suggested intent was right (default: %(default)s)")
    parser.add_argument("--seeds", default=None,
                        help="random_seed values of the intent classifier to retrain with, comma-separated; each "
                             "other than config.yml's also trains a before model (default: config.yml's only)")
    parser.add_argument("--retrain-before", action="store_true",
                        help="train the before model of config.yml's seed here too (and report whether it agrees "
                             "with models/shop.tar.gz), instead of using the current model")
    parser.add_argument("--keep", type=Path, default=None, help="keep the work files (inbox, copy, models) here")
    args = parser.parse_args(argv)
    started = time.monotonic()
    seeds = [int(seed) for seed in args.seeds.split(",")] if args.seeds else [classifier_seed()]
    test, traffic = read_messages(TEST), read_messages(TRAFFIC)
    thresholds = Thresholds()
    encoder = inbox.Encoder()
    print(f"learning loop: {len(test)} test messages ({TEST.name}), {len(traffic)} traffic messages "
          f"({TRAFFIC.name}); checking the traffic's wording", flush=True)
    wording = wording_check(traffic, test, encoder)

    work = Path(tempfile.mkdtemp(prefix="learning-loop-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    try:
        # (a) the current model: the one the bot runs, which also produced the traffic's conversations
        model_before, trained_here = MODEL, False
        stamp = MODEL.with_name(MODEL.name + ".sha256")
        if not (MODEL.exists() and stamp.exists() and stamp.read_text().strip() == fingerprint()):
            model_before, trained_here = work / "models" / "current.tar.gz", True
            train(NLU, work / "models", "current", work / "train-current.log")
        print("learning loop: parsing the test set and the traffic with the current model", flush=True)
        parsed = parse(model_before, [text for _, text in test + traffic])
        current = evaluate(test, parsed[:len(test)], thresholds)
        parsed = parsed[len(test):]

        # (b) the traffic through the bot, the tracker store and the inbox; review; accept into a copy
        print(f"learning loop: playing the {len(traffic)} traffic messages as conversations", flush=True)
        tracker_db = work / "tracker.db"
        tracker_db.unlink(missing_ok=True)
        simulated = simulate(traffic, parsed, thresholds, tracker_db)
        conversations = read_conversations(f"sqlite:///{tracker_db}").conversations
        print(f"learning loop: exporting the inbox from {len(conversations)} conversations", flush=True)
        inbox_file = work / "inbox.yml"
        exported = inbox.export(conversations, inbox_file, threshold=thresholds.fallback["threshold"], nlu_path=NLU,
                                encoder=encoder, source=str(tracker_db))
        order_numbers = inbox._order_numbers()
        labels = {inbox.example_key(inbox.annotate(text, order_numbers)): gold for gold, text in traffic}
        quality = inbox_quality(exported, labels, simulated["outcomes"])
        print(f"  inbox: {exported.flagged} flagged messages, {len(exported.items)} distinct, "
              f"{len(exported.clusters)} clusters; found {quality['misunderstood_found']} of "
              f"{quality['traffic_misunderstood']} misunderstood traffic messages", flush=True)
        reviewed_file = work / "reviewed.yml"
        reviewed = review(inbox_file, labels, args.review, reviewed_file)
        nlu_copy = work / "data" / "nlu.yml"
        nlu_copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(NLU, nlu_copy)
        accepted = inbox.accept(reviewed_file, nlu_copy, DOMAIN)
        print(f"  accepted: {accepted.summary()}", flush=True)
        validation = subprocess.run(
            [RASA, "data", "validate", "--fail-on-warnings", "--domain", str(DOMAIN), "--data", str(nlu_copy),
             str(RULES), str(STORIES)], cwd=PROJECT_ROOT, capture_output=True, text=True)
        print(f"  rasa data validate on the copy: {'clean' if validation.returncode == 0 else 'FAILED'}", flush=True)

        # (c) retrain on the copy, (d) measure again; per seed of the intent classifier
        runs = [retrain_and_measure(seed, nlu_copy, test, thresholds, work, current, args.retrain_before)
                for seed in seeds]
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    def mean(side: str, key: str) -> float:
        return round(float(np.mean([run[side]["accuracy"][key] for run in runs])), 4)

    in_scope_count = sum(gold != OUT_OF_SCOPE for gold, _ in test)
    results = {
        "command": "python -m bench.learning_loop" + (f" {' '.join(argv)}" if argv else ""),
        "data": {
            "test": str(TEST.relative_to(PROJECT_ROOT)), "test_messages": len(test), "test_in_scope": in_scope_count,
            "test_provenance": "written for this project, never trained on, never used to choose settings (file "
                               "header); nothing of it enters the inbox or the training data here",
            "traffic": str(TRAFFIC.relative_to(PROJECT_ROOT)), "traffic_messages": len(traffic),
            "traffic_provenance": "written for this benchmark (file header); its flagged part is trained on here",
            "traffic_wording": wording,
        },
        "configuration": {
            "model_before": str(model_before) if trained_here else str(MODEL.relative_to(PROJECT_ROOT)),
            "model_before_trained_here": trained_here, "config": CONFIG.name, "seeds": seeds,
            "before_retrained": args.retrain_before,
            "fallback": thresholds.fallback, "clarify": thresholds.clarify,
            "inbox": {"threshold": thresholds.fallback["threshold"],
                      "cluster_distance": inbox.DEFAULT_CLUSTER_DISTANCE,
                      "rephrase_similarity": inbox.DEFAULT_REPHRASE_SIMILARITY,
                      "handoff_window": inbox.DEFAULT_HANDOFF_WINDOW, "suggest": "auto"},
            "review": args.review,
            "training": "rasa train --config config.yml --domain domain.yml --data <copy of data/nlu.yml with the "
                        "accepted examples> data/rules.yml data/stories.yml",
        },
        "simulation": {"decisions": dict(Counter(outcome["decision"] for outcome in simulated["outcomes"])),
                       "misunderstood": sum(not outcome["right"] for outcome in simulated["outcomes"]),
                       "conversations": len(conversations)},
        "inbox": quality,
        "review": reviewed,
        "accept": {"added": len(accepted.added), "skipped_already_there": len(accepted.skipped),
                   "conflicts": len(accepted.conflicts),
                   "added_per_intent": dict(Counter(intent for intent, _ in accepted.added).most_common()),
                   "conflict_examples": [[example, asked, there] for asked, example, there in accepted.conflicts]},
        "validation_clean": validation.returncode == 0,
        # the headline: config.yml's seed (the model the bot runs, then the same training on the copy)
        "before": runs[0]["before"], "after": runs[0]["after"], "changes": runs[0]["changes"],
        "runs": runs,
        "mean_over_seeds": {side: {key: mean(side, key) for key in ("overall", "in_scope", "out_of_scope")}
                            for side in ("before", "after")},
        "timings_s": {"total_s": round(time.monotonic() - started)},
    }
    write_results("learning-loop", results)
    for run in runs:
        b, a, changes = run["before"], run["after"], run["changes"]
        print(f"seed {run['seed']}: test set accuracy {b['accuracy']['overall']:.1%} -> "
              f"{a['accuracy']['overall']:.1%} overall ({changes['all']['fixed']} fixed, "
              f"{changes['all']['broken']} broken, McNemar p {changes['all']['mcnemar_exact_p']}), "
              f"{b['accuracy']['in_scope']:.1%} -> {a['accuracy']['in_scope']:.1%} in scope; in-scope acted on "
              f"correctly at once {b['bot']['in_scope_direct_accuracy']:.1%} -> "
              f"{a['bot']['in_scope_direct_accuracy']:.1%}, out of scope declined "
              f"{b['bot']['out_of_scope_declined']:.1%} -> {a['bot']['out_of_scope_declined']:.1%}")
        if a["accuracy"]["overall"] <= b["accuracy"]["overall"]:
            print(f"note: seed {run['seed']}: the retrained model is not more accurate on the test set; see "
                  f"docs/learning-loop.md")


if __name__ == "__main__":
    sys.exit(main())
