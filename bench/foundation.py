"""Foundation benchmark: how fast the shop assistant (config.yml as it is) trains, loads and answers on this machine.

Measures `rasa train` wall time (forced, into a temporary folder), the time until both servers are ready,
/model/parse latency, REST turn latency without and with calls to the action server, and the resident
memory of both servers. Writes bench/results/foundation.json.

    python -m bench.foundation [--skip-train] [--turns 100]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import requests
import yaml

from bench.common import configuration, percentiles_ms, time_calls, write_results
from shop.db import make_engine
from shop.servers import EMBEDDED_PROFILE, RASA, rss_mib, start_servers
from shop.settings import PROJECT_ROOT

PARSE_MESSAGES = [
    "where is my order", "i want to return the kettle", "has my refund come through", "cancel order 10003",
    "how much is shipping to norway", "can I pay with paypal", "talk to a human please", "what's the weather",
    "my email is alice@example.com", "10002",
]
TARGET_ACTION_TURN_P50_MS = 100


def train_time(workdir: Path) -> float:
    print("rasa train (forced, 2-4 minutes)...", flush=True)
    start = time.perf_counter()
    subprocess.run(
        [RASA, "train", "--force", "--out", str(workdir / "models"), "--fixed-model-name", "bench",
         "--data", "data/nlu.yml", "data/rules.yml", "data/stories.yml"],
        cwd=PROJECT_ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-train", action="store_true", help="do not measure rasa train")
    parser.add_argument("--turns", type=int, default=100, help="REST turns per measurement")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = {"config": configuration(PROJECT_ROOT / "config.yml")}
        if not args.skip_train:
            results["rasa_train_s"] = round(train_time(work), 1)
        database_url = f"sqlite:///{work / 'shop.db'}"
        make_engine(database_url, seed_demo=True).dispose()
        print("starting the action server and the Rasa server...", flush=True)
        # As endpoints.yml runs it by default: every conversation stored in a SQLite tracker store.
        tracker_store_url = f"sqlite:///{work / 'tracker.db'}"  # as scripts/env.sh's default
        servers = start_servers(work, database_url, tracker_store_url=tracker_store_url)
        endpoints = yaml.safe_load((PROJECT_ROOT / "endpoints.yml").read_text())
        results["endpoints"] = {part: {**endpoints[part], **({"url": tracker_store_url} if part == "tracker_store"
                                                             else {})}
                                for part in ("tracker_store", "lock_store", "event_broker") if part in endpoints}
        results["endpoints"]["environment"] = {name: servers.env[name] for name in EMBEDDED_PROFILE}
        try:
            results["servers_ready_s"] = round(servers.model_load_s, 1)
            servers.send("warm-up", "hi")
            servers.send("warm-up", "what payment methods do you accept")

            def parse(i: int) -> None:
                requests.post(f"{servers.rasa_url}/model/parse",
                              json={"text": PARSE_MESSAGES[i % len(PARSE_MESSAGES)]}, timeout=30).raise_for_status()

            def greet(i: int) -> None:
                servers.send(f"bench-greet-{i}", "hello")

            def policy(i: int) -> None:
                servers.send(f"bench-policy-{i}", "what payment methods do you accept")

            def order_status(i: int) -> None:
                servers.send(f"bench-status-{i}", "where is order 10002")  # untimed setup turn
                start = time.perf_counter()
                servers.send(f"bench-status-{i}", "alice@example.com")
                order_status_samples.append(time.perf_counter() - start)

            parse_samples = time_calls(parse, args.turns * 2, "/model/parse")
            greet_samples = time_calls(greet, args.turns, "REST turn, no action call")
            policy_samples = time_calls(policy, args.turns, "REST turn, one action call")
            order_status_samples: list = []
            time_calls(order_status, max(20, args.turns // 2), "REST turn, form validation + DB lookup")

            results.update({
                "parse_ms": percentiles_ms(parse_samples),
                "rest_turn_ms": {
                    "no_action_call": percentiles_ms(greet_samples),
                    "one_action_call": percentiles_ms(policy_samples),
                    "form_validation_and_db": percentiles_ms(order_status_samples),
                },
                "rss_mib": {name: round(rss_mib(process.pid), 0) for name, process in servers.processes.items()},
            })
        finally:
            servers.stop()

    p50 = results["rest_turn_ms"]["one_action_call"]["p50"]
    results["target"] = {"rest_turn_with_action_p50_ms": TARGET_ACTION_TURN_P50_MS, "measured_p50_ms": p50,
                         "met": p50 < TARGET_ACTION_TURN_P50_MS}
    write_results("foundation", results)


if __name__ == "__main__":
    main()
