"""Sentiment benchmark: the project's SentimentAnalyzer (all-MiniLM-L6-v2 + trained low-rank updates and head)
side by side with the lexicon baseline VADER, on the same messages, in one run.

- SST-2 dev accuracy (872 movie-review sentences, negative/positive; never trained on);
- TweetEval sentiment validation macro-recall (2,000 tweets, three classes; never trained on);
- accuracy and macro-recall on bench/data/sentiment_customer_service.tsv (the project's own labelled messages);
- latency per message (p50/p95), and the latency the component adds to an NLU parse of the trained Rasa model
  (the same messages parsed with and without it, interleaved, in one process).
The component runs as configured by default (precision `auto`: bf16 where this CPU multiplies it natively, else
int8); its other precisions are scored too, to show what each costs.

How three-class systems answer SST-2's two classes: positive when the positive score beats the negative one
(VADER: compound >= 0). VADER's three classes use its authors' thresholds: compound >= 0.05 positive,
<= -0.05 negative, else neutral. Writes bench/results/sentiment.json.

    python -m bench.sentiment [--model models/shop.tar.gz] [--latency-messages 200]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from bench.common import percentiles_ms, time_calls, write_results
from custom_components.sentiment_model import DEFAULT_WEIGHTS, LABELS, SentimentClassifier
from custom_components.sentiment_train import (
    DEFAULT_DATA_DIR,
    NEGATIVE,
    POSITIVE,
    load_sst2,
    load_tweeteval,
    macro_recall,
    sha256,
)
from shop.settings import PROJECT_ROOT

CUSTOMER_SERVICE = Path(__file__).resolve().parent / "data" / "sentiment_customer_service.tsv"
TARGETS = {"sst2_dev_accuracy": 0.91, "tweeteval_val_macro_recall": 0.70, "added_parse_p50_ms": 10.0}
# Texts in, one dict of scores per text out: what each system gives the metrics.
Scorer = Callable[[Sequence[str]], List[Dict[str, float]]]


def load_customer_service(path: Path = CUSTOMER_SERVICE) -> tuple[List[str], List[int]]:
    """`label<TAB>text` with a header; labels negative, neutral, positive."""
    rows = [line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    return [text for _, text in rows], [LABELS.index(label) for label, _ in rows]


def vader_scorer() -> Scorer:
    analyzer = SentimentIntensityAnalyzer()

    def score(texts: Sequence[str]) -> List[Dict[str, float]]:
        return [analyzer.polarity_scores(text) for text in texts]

    return score


def vader_label(scores: Dict[str, float]) -> int:
    compound = scores["compound"]
    return POSITIVE if compound >= 0.05 else NEGATIVE if compound <= -0.05 else LABELS.index("neutral")


def quality(name: str, scores_of: Scorer, label_of: Callable[[Dict[str, float]], int], binary_positive:
            Callable[[Dict[str, float]], bool], data_dir: Path) -> Dict[str, float]:
    """The three quality figures for one system."""
    print(f"{name}: scoring SST-2 dev, TweetEval validation and the customer-service set", flush=True)
    sst2, tweets = load_sst2(data_dir, "dev"), load_tweeteval(data_dir, "val")
    service_texts, service_labels = load_customer_service()
    sst2_hits = [binary_positive(s) == (label == POSITIVE) for s, label in zip(scores_of(sst2.texts), sst2.labels,
                                                                                 strict=True)]
    tweet_predicted = [label_of(s) for s in scores_of(tweets.texts)]
    service_predicted = [label_of(s) for s in scores_of(service_texts)]
    return {
        "sst2_dev_accuracy": round(sum(sst2_hits) / len(sst2_hits), 4),
        "tweeteval_val_macro_recall": round(macro_recall(tweet_predicted, tweets.labels), 4),
        "customer_service_accuracy": round(
            sum(p == label for p, label in zip(service_predicted, service_labels, strict=True)) / len(service_labels),
            4),
        "customer_service_macro_recall": round(macro_recall(service_predicted, service_labels), 4),
    }


def per_message_ms(name: str, predict_one: Callable[[str], object], texts: Sequence[str], n: int) -> Dict:
    """p50/p95/mean in ms to the microsecond: VADER takes a few hundredths of a millisecond."""
    for text in texts[:5]:  # warm-up
        predict_one(text)
    samples = sorted(time_calls(lambda i: predict_one(texts[i % len(texts)]), n, f"{name} per message"))
    return {"p50": round(samples[len(samples) // 2] * 1000, 3),
            "p95": round(samples[int(0.95 * len(samples))] * 1000, 3),
            "mean": round(statistics.fmean(samples) * 1000, 3), "n": len(samples)}


def added_parse_latency(model: Path, texts: Sequence[str], n: int) -> Dict:
    """p50 of NLU parse time with the component minus without it, same model, same messages, interleaved."""
    from rasa.core.agent import Agent
    from rasa.core.policies.policy import Policy
    from rasa.nlu.classifiers.regex_message_handler import RegexMessageHandler
    from rasa.utils.log_utils import configure_structlog

    from custom_components.sentiment_analyzer import SentimentAnalyzer

    configure_structlog(logging.WARNING)  # not a debug line per parse
    print(f"loading {model} (about a minute)", flush=True)
    agent = Agent.load(str(model))
    # Rasa's graph node keeps the component's `process` function; "without" swaps in one that passes the messages on.
    nodes = [node for node in agent.processor.graph_runner._instantiated_nodes.values()
             if node._component_class is SentimentAnalyzer]
    if not nodes:
        raise SystemExit(f"{model} has no SentimentAnalyzer in its pipeline: add it to config.yml")
    node, real_process = nodes[0], nodes[0]._fn

    def skip(component: SentimentAnalyzer, messages: List) -> List:
        return messages

    async def measure() -> Dict[str, List[float]]:
        samples: Dict[str, List[float]] = {"with": [], "without": []}
        for text in texts[:5]:
            await agent.parse_message(text)
        for i in range(n):
            for variant in (("with", "without") if i % 2 == 0 else ("without", "with")):
                node._fn = real_process if variant == "with" else skip
                start = time.perf_counter()
                parsed = await agent.parse_message(texts[i % len(texts)])
                samples[variant].append(time.perf_counter() - start)
                if ("sentiment" in parsed) != (variant == "with"):
                    raise RuntimeError(f"the {variant} variant did not run as intended")
            if (i + 1) % 25 == 0 or i + 1 == n:
                print(f"  parse with and without the component: {i + 1}/{n}", flush=True)
        return samples

    try:
        samples = asyncio.run(measure())
    finally:
        node._fn = real_process
    with_ms, without_ms = percentiles_ms(samples["with"]), percentiles_ms(samples["without"])
    schema = agent.processor.model_metadata.predict_schema.nodes
    nlu = [n.uses.__name__ for name, n in schema.items()
           if name.startswith("run_") and not issubclass(n.uses, Policy | RegexMessageHandler)]
    return {"parse_with_ms": with_ms, "parse_without_ms": without_ms,
            "added_p50_ms": round(with_ms["p50"] - without_ms["p50"], 1), "nlu_pipeline": nlu}


def ratio(ours: float, baseline: float) -> float:
    return round(ours / baseline, 2) if baseline else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--model", type=Path, default=PROJECT_ROOT / "models" / "shop.tar.gz")
    parser.add_argument("--latency-messages", type=int, default=200)
    args = parser.parse_args()

    texts, _ = load_customer_service()
    systems: Dict[str, Dict] = {}
    for name, precision in (("sentiment_analyzer", "auto"), ("sentiment_analyzer_int8", "int8"),
                            ("sentiment_analyzer_fp32", "fp32")):
        classifier = SentimentClassifier.load(precision=precision)
        systems[name] = quality(name, lambda batch, c=classifier: [s.scores for s in c.predict(batch)],
                                lambda s: max(range(3), key=lambda i: s[LABELS[i]]),
                                lambda s: s["positive"] > s["negative"], args.data_dir)
        systems[name]["per_message_ms"] = per_message_ms(name, lambda t, c=classifier: c.predict([t]), texts,
                                                         args.latency_messages)
        systems[name]["precision"] = classifier.precision
    vader = vader_scorer()
    systems["vader"] = quality("VADER", vader, vader_label, lambda s: s["compound"] >= 0, args.data_dir)
    systems["vader"]["per_message_ms"] = per_message_ms("VADER", lambda t: vader([t]), texts, args.latency_messages)
    ours, baseline = systems["sentiment_analyzer"], systems["vader"]
    parse = added_parse_latency(args.model, texts, args.latency_messages)
    ours["added_parse_p50_ms"] = parse["added_p50_ms"]
    measured = {"sst2_dev_accuracy": ours["sst2_dev_accuracy"],
                "tweeteval_val_macro_recall": ours["tweeteval_val_macro_recall"],
                "added_parse_p50_ms": ours["added_parse_p50_ms"]}
    results = {
        "systems": systems,
        "ratios_ours_to_vader": {key: ratio(ours[key], baseline[key]) for key in (
            "sst2_dev_accuracy", "tweeteval_val_macro_recall", "customer_service_accuracy",
            "customer_service_macro_recall")} | {
            "per_message_p50": ratio(ours["per_message_ms"]["p50"], baseline["per_message_ms"]["p50"])},
        "parse": parse,
        "model": str(args.model.relative_to(PROJECT_ROOT)) if args.model.is_relative_to(PROJECT_ROOT)
        else str(args.model),
        "weights_sha256": sha256(DEFAULT_WEIGHTS),
        "customer_service_messages": len(texts),
        "targets": {key: {"target": target, "measured": measured[key],
                          "met": measured[key] <= target if key.endswith("_ms") else measured[key] >= target}
                    for key, target in TARGETS.items()},
    }
    write_results("sentiment", results)


if __name__ == "__main__":
    main()
