"""Does the bot acknowledge frustration when, and only when, the customer is frustrated? Before and after.

Data: bench/data/tone_customer_service.tsv (customer-service messages labelled frustrated/neutral, written for this
project, never trained on; provenance in its header). Each message is parsed by the trained model and the bot's
decision is made by the action server's own rule (actions/sentiment.py `frustrated`): after this work the
FrustrationDetector's verdict; before it (the commit bench/before.py checks out) a clearly negative sentiment,
at that commit's shop.yml `sentiment.negative_confidence`.

Reports, each with its count: false acknowledgements on neutral messages (all, and the service requests among
them: returns, cancellations, refunds, order status), and recall on frustrated messages.
Usage: python -m bench.tone [--before REF]; writes bench/results/tone.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import yaml

from actions.sentiment import frustrated
from bench import before as before_tree
from bench.common import read_tsv, write_results
from bench.understanding import BASE_REF, parse
from shop.settings import PROJECT_ROOT

DATA = Path(__file__).resolve().parent / "data" / "tone_customer_service.tsv"
SERVICE_INTENTS = {"return_item", "cancel_order", "refund_status", "order_status"}


def share(hits: int, total: int) -> Dict[str, Any]:
    return {"count": hits, "of": total, "share": round(hits / total, 4) if total else None}


def score(messages: List[Dict[str, str]], parsed: List[Dict[str, Any]],
          acknowledges: Callable[[Dict[str, Any]], bool]) -> Dict[str, Any]:
    decisions = [acknowledges(result) for result in parsed]
    neutral = [d for m, d in zip(messages, decisions, strict=True) if m["label"] == "neutral"]
    service = [d for m, d in zip(messages, decisions, strict=True)
               if m["label"] == "neutral" and m["intent"] in SERVICE_INTENTS]
    upset = [d for m, d in zip(messages, decisions, strict=True) if m["label"] == "frustrated"]
    return {
        "false_acknowledgements_neutral": share(sum(neutral), len(neutral)),
        "false_acknowledgements_service_requests": share(sum(service), len(service)),
        "recall_frustrated": share(sum(upset), len(upset)),
        "wrong": [{"label": m["label"], "text": m["text"], "acknowledged": d,
                   "frustration": r.get("frustration"), "sentiment": (r.get("sentiment") or {}).get("label")}
                  for m, d, r in zip(messages, decisions, parsed, strict=True) if d != (m["label"] == "frustrated")],
    }


def old_rule(tree: Path) -> Callable[[Dict[str, Any]], bool]:
    """The acknowledgement rule of a commit before the FrustrationDetector: clearly negative sentiment."""
    config = yaml.safe_load((tree / "shop.yml").read_text(encoding="utf-8")) or {}
    threshold = float((config.get("sentiment") or {}).get("negative_confidence", 0.7))

    def acknowledges(result: Dict[str, Any]) -> bool:
        sentiment = result.get("sentiment") or {}
        return sentiment.get("label") == "negative" and float(sentiment.get("confidence", 0)) >= threshold
    return acknowledges


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=PROJECT_ROOT / "models" / "shop.tar.gz")
    parser.add_argument("--before", default=BASE_REF)
    parser.add_argument("--no-before", action="store_true")
    args = parser.parse_args(argv)
    messages = read_tsv(DATA)
    texts = [m["text"] for m in messages]
    pipeline = [step["name"].rsplit(".", 1)[-1] for step in
                yaml.safe_load((PROJECT_ROOT / "config.yml").read_text())["pipeline"]]
    results: Dict[str, Any] = {"data": str(DATA.relative_to(PROJECT_ROOT)), "messages": len(messages),
                               "command": "python -m bench.tone" + (f" {' '.join(argv)}" if argv else "")}
    print(f"tone: parsing {len(texts)} messages with {args.model}", flush=True)
    results["after"] = {"model": str(args.model.relative_to(PROJECT_ROOT)), "pipeline": pipeline,
                        **score(messages, parse(args.model, texts), frustrated)}
    if not args.no_before:
        old = before_tree.prepare(args.before)
        print(f"tone: parsing with the model of {args.before}", flush=True)
        results["before"] = {"ref": args.before, "sha": old.sha, **score(
            messages, parse(old.model, texts, old.environment()), old_rule(old.tree))}
    write_results("tone", results)
    for side in ("before", "after"):
        if side in results:
            r = results[side]
            print(f"{side}: false acknowledgements {r['false_acknowledgements_neutral']['count']}/"
                  f"{r['false_acknowledgements_neutral']['of']} neutral, recall {r['recall_frustrated']['count']}/"
                  f"{r['recall_frustrated']['of']} frustrated")


if __name__ == "__main__":
    main()
