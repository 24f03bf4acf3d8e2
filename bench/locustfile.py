"""Simulated customers for the load benchmark (bench/load.py runs this with Locust, headless; it runs in Locust's own
virtual environment, var/tools/locust-venv, so it imports nothing from the project).

Each simulated customer plays the scripted conversations of bench/data/load_conversations.yml (handed over as JSON
by bench/load.py) over the REST channel, one turn per Locust task, with think time between turns; each
conversation is a new customer conversation with its own sender id `<prefix>-u<user>-c<conversation>`. With think
time, customers arrive spread over the first think time rather than all at once. Choices and think times come from
a random generator seeded per simulated customer, so every setup gets the same customers.

Every turn is written to a JSON-lines log (LOAD_LOG): a "send" line before the request (so a turn cut off by the
end of the run is still known to have been sent) and a "reply" line after it, with the latency, HTTP status and
what was wrong, if anything: an HTTP error, an exception (timeout, connection), an empty answer, or the bot's
apology for a technical problem (actions/responses.yml `technical_problem`). Those are failures for Locust too.

Settings (environment): LOAD_SCRIPTS (JSON file), LOAD_PREFIX, LOAD_LOG, LOAD_THINK_MIN_S / LOAD_THINK_MAX_S
(0 / 0: no think time), LOAD_SEED, LOAD_APOLOGY (the apology text), LOAD_TIMEOUT_S.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time

import gevent
from locust import HttpUser, events, task

SCRIPTS = json.loads(open(os.environ["LOAD_SCRIPTS"], encoding="utf-8").read())
PREFIX = os.environ["LOAD_PREFIX"]
THINK_MIN_S = float(os.environ.get("LOAD_THINK_MIN_S", "1"))
THINK_MAX_S = float(os.environ.get("LOAD_THINK_MAX_S", "3"))
SEED = int(os.environ.get("LOAD_SEED", "1"))
APOLOGY = os.environ.get("LOAD_APOLOGY", "")
TIMEOUT_S = float(os.environ.get("LOAD_TIMEOUT_S", "120"))
LOG = open(os.environ["LOAD_LOG"], "a", encoding="utf-8", buffering=1)  # one line at a time
WEIGHTS = [float(script.get("weight", 1)) for script in SCRIPTS]
USER_NUMBERS = itertools.count(1)


def log(record: dict) -> None:
    LOG.write(json.dumps(record) + "\n")


@events.test_stop.add_listener
def _close_log(**_kwargs) -> None:
    LOG.flush()


class Customer(HttpUser):
    def on_start(self) -> None:
        self.number = next(USER_NUMBERS)
        self.random = random.Random(SEED * 100_003 + self.number)
        self.script: dict | None = None
        self.turn_index = 0
        self.conversations = 0
        self.sender = ""
        if THINK_MAX_S > 0:  # customers arrive spread over one think time, not all in the same instant
            gevent.sleep(self.random.uniform(0, THINK_MAX_S))

    def wait_time(self) -> float:  # think time between turns
        return self.random.uniform(THINK_MIN_S, THINK_MAX_S) if THINK_MAX_S > 0 else 0.0

    def next_turn(self) -> tuple[str, str | None]:
        if self.script is None or self.turn_index >= len(self.script["turns"]):
            self.script = self.random.choices(SCRIPTS, weights=WEIGHTS)[0]
            self.turn_index = 0
            self.conversations += 1
            self.sender = f"{PREFIX}-u{self.number:03d}-c{self.conversations:03d}"
        turn = self.script["turns"][self.turn_index]
        self.turn_index += 1
        if isinstance(turn, dict):
            return str(turn["say"]), turn.get("expect")
        return str(turn), None

    @task
    def say(self) -> None:
        message, expect = self.next_turn()
        script = self.script
        base = {"sender": self.sender, "conversation": script["id"], "kind": script["kind"],
                "turn": self.turn_index, "last": self.turn_index == len(script["turns"])}
        log({"event": "send", "t": time.time(), **base})
        started = time.time()
        record = {"event": "reply", **base, "t": started, "status": None, "error": None, "unexpected": False}
        try:
            with self.client.post("/webhooks/rest/webhook", json={"sender": self.sender, "message": message},
                                  name=script["kind"], timeout=TIMEOUT_S, catch_response=True) as response:
                record["status"] = response.status_code
                error = None
                if not response.status_code:  # Locust's answer to a connection error or a timeout
                    error = f"exception: {response.error!r}"[:240]
                elif not 200 <= response.status_code < 300:
                    error = f"http {response.status_code}"
                else:
                    try:
                        replies = response.json()
                    except ValueError:
                        replies, error = None, "not json"
                    if error is None:
                        texts = [reply.get("text") or "" for reply in replies or [] if isinstance(reply, dict)]
                        if not replies:
                            error = "empty reply"
                        elif APOLOGY and any(APOLOGY in text for text in texts):
                            error = "apology"
                        elif expect and not any(expect.lower() in text.lower() for text in texts):
                            record["unexpected"] = True
                            record["reply"] = " | ".join(texts)[:300]
                if error is None:
                    response.success()
                else:
                    response.failure(error)
                    record["error"] = error
                    if error != "apology":
                        record["body"] = (response.text or "")[:300]
        except Exception as exc:  # noqa: BLE001 - anything a request can raise is a failed turn, not a crash
            record["error"] = f"exception: {exc.__class__.__name__}: {str(exc)[:200]}"
        record["ms"] = round((time.time() - started) * 1000, 1)
        log(record)
