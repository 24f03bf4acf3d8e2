"""An order enumeration run against the real verification code: a script tries over a thousand order-number/email
pairs in over a hundred conversations (a new sender id every ten guesses, as a script that starts over would) from
four client addresses, answering the bot as a customer would: it keeps asking after each offer of a person.

It must find no order, and be throttled (shop/throttle.py, the limits shipped in shop.yml): after
`verification.throttle.per_client` failures an address gets only "wrong pair, would you like a person?" answers,
even for pairs that are right. To prove that, the script also tries right pairs (as one holding a leaked list
would), each after its address failed `per_client` times; it tries them with the same sender ids and the same
rhythm as its guesses. Each store is run: the shop database (the embedded default, SQLite) and Redis (replicas).

The figures (guesses, orders found, throttled answers, checks that reached the database unthrottled) go to
var/security/enumeration.json, and `python -m bench.security` puts them into bench/results/security.json.
Runs in a few seconds per store.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import pytest
import redis
from rasa_sdk.executor import CollectingDispatcher

from actions.order_status import ActionOrderStatus, ValidateOrderStatusForm
from bench.common import machine, timestamp
from shop.limits import DatabaseLog, RedisLog, WindowLog
from shop.seed import CUSTOMERS, ORDERS
from shop.settings import PROJECT_ROOT, get_settings
from shop.throttle import CLIENT_ADDRESS, Attempt, VerificationThrottle
from tests.conftest import REDIS_URL, _port_open
from tests.support import make_tracker, slot_events, texts

CLIENTS = ["203.0.113.10", "203.0.113.11", "198.51.100.20", "198.51.100.21"]
CONVERSATIONS_PER_CLIENT = 26
GUESSES_PER_CONVERSATION = 10
RESULTS_FILE = PROJECT_ROOT / "var" / "security" / "enumeration.json"  # bench.security puts it in bench/results
DOMAIN = {"forms": {"order_status_form": {"required_slots": ["order_id", "order_email"]}}}
REAL_PAIRS = [(order_id, CUSTOMERS[customer][0]) for order_id, customer, *_ in ORDERS]
# What the script guesses: numbers in the shop's format around the real ones, and addresses it made up.
FIRST_NAMES = ["john", "mary", "james", "linda", "michael", "sarah", "david", "laura", "peter", "anna", "tom", "emma"]
DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "example.org", "mail.example.net"]


class CountingThrottle(VerificationThrottle):
    """The shipped throttle, counting its decisions for the figures."""

    def __init__(self, log: WindowLog) -> None:
        settings = get_settings()
        super().__init__(settings.throttle, log, settings.client_addresses.exempt)
        self.decisions: Dict[str, int] = {"checked": 0, "order": 0, "sender": 0, "client": 0}

    def blocked_by(self, attempt: Attempt) -> Optional[str]:
        blocked = super().blocked_by(attempt)
        self.decisions[blocked or "checked"] += 1
        return blocked


@dataclass
class Run:
    store: str
    guesses: int = 0
    right_pairs_tried: int = 0
    orders_found: List[str] = field(default_factory=list)
    persons_offered: int = 0
    answers: Dict[str, int] = field(default_factory=dict)  # what the bot said, by text
    seconds: float = 0.0


async def ask(order_id: str, email: str, sender: str, client: str, failures: int) -> Tuple[List[str], Dict[str, Any]]:
    """One pair in a conversation, as the REST channel hands it over (client address in the message metadata)."""
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(slots={"verification_failures": failures},
                           new_slots={"order_id": order_id, "order_email": email},
                           active_loop="order_status_form", sender_id=sender)
    tracker.latest_message["metadata"] = {CLIENT_ADDRESS: client}
    slots = slot_events(await ValidateOrderStatusForm().run(dispatcher, tracker, DOMAIN))
    said = [texts(dispatcher)] if dispatcher.messages else []
    if slots.get("verified_order_id") is None and int(slots.get("verification_failures") or 0) >= \
            get_settings().max_verification_failures:
        # the form ended: the skill answers (an offer of a person) and the conversation starts counting again
        skill = CollectingDispatcher()
        skill_slots = slot_events(ActionOrderStatus().run(
            skill, make_tracker(slots={"verification_failures": slots["verification_failures"]}, sender_id=sender),
            DOMAIN))
        said.append(texts(skill))
        slots["verification_failures"] = skill_slots.get("verification_failures", 0)
        slots["pending_offer"] = skill_slots.get("pending_offer")
    return said, slots


async def enumerate_orders(store: str, throttle: CountingThrottle, seed: int = 15) -> Run:
    rng = random.Random(seed)
    run = Run(store)
    per_client = get_settings().throttle.per_client
    failed = {client: 0 for client in CLIENTS}
    started = time.perf_counter()
    for conversation in range(CONVERSATIONS_PER_CLIENT):
        for client in CLIENTS:
            sender = f"enum-{client}-{conversation}-{uuid.uuid4().hex[:6]}"
            failures = 0
            for guess in range(GUESSES_PER_CONVERSATION):
                right = failed[client] >= per_client and guess == GUESSES_PER_CONVERSATION - 1
                if right:
                    order_id, email = rng.choice(REAL_PAIRS)
                else:
                    order_id = str(rng.randint(10000, 10999))
                    email = f"{rng.choice(FIRST_NAMES)}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}"
                said, slots = await ask(order_id, email, sender, client, failures)
                run.guesses += 1
                run.right_pairs_tried += right
                if slots.get("verified_order_id"):
                    run.orders_found.append(slots["verified_order_id"])
                    failures = 0
                    continue
                failed[client] += 1
                failures = int(slots.get("verification_failures") or 0)
                run.persons_offered += slots.get("pending_offer") == "handoff"
                for text in said:
                    run.answers[text] = run.answers.get(text, 0) + 1
    run.seconds = time.perf_counter() - started
    return run


def write_figures(run: Run, throttle: CountingThrottle) -> Dict[str, Any]:
    """This store's figures into var/security/enumeration.json (the other store's are kept)."""
    settings = get_settings()
    existing = json.loads(RESULTS_FILE.read_text()) if RESULTS_FILE.exists() else {}
    runs = {entry["store"]: entry for entry in existing.get("runs", [])}
    runs[run.store] = {
        "store": run.store, "guesses": run.guesses, "right_pairs_tried": run.right_pairs_tried,
        "orders_found": len(run.orders_found), "throttled": sum(throttle.decisions[k] for k in ("order", "sender",
                                                                                                    "client")),
        "throttled_by": {k: throttle.decisions[k] for k in ("order", "sender", "client")},
        "checked_unthrottled": throttle.decisions["checked"], "persons_offered": run.persons_offered,
        "distinct_answers": len(run.answers), "seconds": round(run.seconds, 2),
    }
    figures = {
        "benchmark": "security-enumeration", "measured_at": timestamp(), "machine": machine(),
        "command": "python -m pytest tests/security/test_enumeration.py",
        "scenario": {"client_addresses": len(CLIENTS), "conversations": len(CLIENTS) * CONVERSATIONS_PER_CLIENT,
                     "guesses_per_conversation": GUESSES_PER_CONVERSATION,
                     "right_pairs": "one per conversation once its address has failed per_client times"},
        "settings": {"max_failures": settings.max_verification_failures,
                     "throttle": {"window_minutes": settings.throttle.window_minutes,
                                  "max_failures_per_order": settings.throttle.max_failures_per_order,
                                  "per_sender": settings.throttle.per_sender,
                                  "per_client": settings.throttle.per_client}},
        "runs": sorted(runs.values(), key=lambda entry: entry["store"]),
    }
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(figures, indent=2) + "\n")
    return runs[run.store]


@pytest.fixture(params=["database", "redis"])
def store(request, db) -> Tuple[str, WindowLog]:
    """Where the throttle counts: the shop database (SQLite, as embedded) or Redis under a prefix of its own."""
    if request.param == "database":
        yield "database (SQLite)", DatabaseLog(lambda: db)
        return
    if not _port_open(REDIS_URL, 6379):
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"test:enumeration:{uuid.uuid4().hex[:10]}:"
    yield "redis", RedisLog(client, prefix)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.mark.parametrize("empty_engine", ["sqlite"], indirect=True)
async def test_an_enumeration_run_finds_no_order_and_is_throttled(store, monkeypatch):
    name, log = store
    throttle = CountingThrottle(log)
    monkeypatch.setattr("actions.verification.get_throttle", lambda: throttle)
    run = await enumerate_orders(name, throttle)
    figures = write_figures(run, throttle)

    assert run.guesses >= 1000 and len(CLIENTS) * CONVERSATIONS_PER_CLIENT >= 100
    assert run.orders_found == [], run.orders_found
    assert run.right_pairs_tried >= 50
    per_client = get_settings().throttle.per_client
    assert figures["checked_unthrottled"] <= len(CLIENTS) * per_client  # at most per_client checks per address
    assert figures["throttled"] >= run.guesses - len(CLIENTS) * per_client
    # the script learns nothing from the answers: only the wrong-pair and offer-of-a-person texts
    assert len(run.answers) == 2, list(run.answers)
    assert all("couldn't" in text for text in run.answers)

    # a customer elsewhere is not locked out by the script: another address, a new conversation, a right pair
    said, slots = await ask("10001", "alice@example.com", "alice-at-home", "192.0.2.44", 0)
    assert slots["verified_order_id"] == "10001" and said == []
