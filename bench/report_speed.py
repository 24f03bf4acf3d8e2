"""How long `python -m analytics report` takes on 10,000 conversations, in a SQLite file and in PostgreSQL.

    python -m bench.report_speed [--conversations 10000] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

The events are synthesised in the shapes Rasa 3.6 stores (copied from the tracker store of a simulated run,
`python -m analytics simulate`): user events with the full parse data (20-intent ranking, entities, sentiment,
frustration), bot events with their metadata (message_name / utter_action, clarification, generator), actions,
slots, forms, session starts. Six kinds of conversation (order status with a rating, a refused return, a kept
cancellation, a handoff after failed verification, misunderstood then clarified, policy questions), 30-50 events
each, with varied sender ids, timestamps over the last 7 days and texts. The shop's tables (handoff tickets,
satisfaction answers) get the matching rows. The PostgreSQL database is created fresh and dropped afterwards.
Results: bench/results/report-speed.json.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, create_engine, insert, text
from sqlalchemy.engine import Engine, make_url

from bench.common import write_results

LIMIT_S = 60.0
MODEL_ID = "1d80a9cd11eb4e1c800ffd25fe3df0c9"
INTENTS = ["greet", "goodbye", "thank", "bot_challenge", "affirm", "deny", "stop", "inform", "order_status",
           "return_item", "refund_status", "cancel_order", "policy_shipping", "policy_returns", "policy_refunds",
           "policy_payment", "policy_contact", "human_handoff", "out_of_scope", "ask_question"]
EMPTY_DATA = {"elements": None, "quick_replies": None, "buttons": None, "attachment": None, "image": None,
              "custom": None}
ORDERS = [("10001", "alice@example.com"), ("10002", "alice@example.com"), ("10004", "bob@example.com"),
          ("10007", "dan@example.com"), ("10009", "eve@example.com"), ("10011", "farid@example.com")]

# Rasa's SQLTrackerStore table (rasa/core/tracker_store.py, SQLEvent), made here so no Rasa import is needed.
METADATA = MetaData()
EVENTS = Table("events", METADATA,
               Column("id", Integer, primary_key=True), Column("sender_id", String(255), nullable=False, index=True),
               Column("type_name", String(255), nullable=False), Column("timestamp", Float),
               Column("intent_name", String(255)), Column("action_name", String(255)), Column("data", Text))

Row = Dict[str, Any]


class ConversationWriter:
    """Events of one conversation, in the shapes and order Rasa stores them."""

    def __init__(self, sender: str, start: float, rng: random.Random) -> None:
        self.sender, self.clock, self.rng = sender, start, rng
        self.rows: List[Row] = []
        self.tickets: List[str] = []
        self.ratings: List[Tuple[str, Optional[int]]] = []

    def _tick(self, seconds: float = 0.002) -> float:
        self.clock += seconds
        return self.clock

    def _add(self, type_name: str, data: Dict[str, Any], intent: Optional[str] = None,
             action: Optional[str] = None) -> None:
        data = {"event": type_name, "timestamp": self.clock, "metadata": {"model_id": MODEL_ID,
                                                                         "assistant_id": "northwind-shop-assistant"},
                **data}
        self.rows.append({"sender_id": self.sender, "type_name": type_name, "timestamp": self.clock,
                          "intent_name": intent, "action_name": action, "data": json.dumps(data)})

    def action(self, name: str, policy: Optional[str] = "RulePolicy") -> None:
        self._tick(self.rng.uniform(0.001, 0.08))
        self._add("action", {"name": name, "policy": policy, "confidence": 1.0, "action_text": None,
                             "hide_rule_turn": False}, action=name)

    def session_start(self) -> None:
        self.action("action_session_start", None)
        self._add("session_started", {})
        self.slot("shop_name", "Northwind Goods")
        self.action("action_listen", None)

    def slot(self, name: str, value: Any) -> None:
        self._tick(0.0001)
        self._add("slot", {"name": name, "value": value}, action=name)

    def active_loop(self, name: Optional[str]) -> None:
        self._tick(0.0001)
        self._add("active_loop", {"name": name}, action=name)

    def user(self, message: str, intent: str, confidence: float = 0.99, sentiment: str = "neutral",
             frustrated: bool = False, entities: Sequence[Dict[str, Any]] = ()) -> None:
        """A customer message with its parse data, then the sentiment slot and featurization, as Rasa logs them."""
        self._tick(self.rng.uniform(2, 40))
        message_id = uuid.UUID(int=self.rng.getrandbits(128)).hex
        others = [name for name in INTENTS if name != intent]
        self.rng.shuffle(others)
        rest = 1 - confidence if intent != "nlu_fallback" else 0.6
        weights = sorted((self.rng.random() for _ in others), reverse=True)
        total = sum(weights)
        ranking = ([] if intent == "nlu_fallback" else [{"name": intent, "confidence": confidence}]) + [
            {"name": name, "confidence": rest * weight / total} for name, weight in zip(others, weights, strict=True)]
        scores = {"negative": 0.05, "neutral": 0.05, "positive": 0.05}
        scores[sentiment] = 0.9
        words = [(index, index + len(word)) for index, word in _words(message)]
        parse = {"intent": {"name": intent, "confidence": confidence},
                 "entities": [*entities, {"entity": "sentiment", "value": sentiment, "start": 0, "end": len(message),
                                          "confidence": 0.9, "extractor": "SentimentAnalyzer"}],
                 "text": message, "message_id": message_id, "metadata": {}, "text_tokens": words,
                 "intent_ranking": ranking,
                 "sentiment": {"label": sentiment, "confidence": 0.9, "scores": scores},
                 "frustration": {"score": 0.8 if frustrated else 0.05, "frustrated": frustrated}}
        self._add("user", {"text": message, "parse_data": parse, "input_channel": "rest", "message_id": message_id},
                  intent=intent)
        for entity in entities:
            self.slot({"order_id": "order_id", "email": "order_email"}.get(entity["entity"], entity["entity"]),
                      entity["value"])
        self.slot("sentiment", sentiment)
        self._tick(self.rng.uniform(0.01, 0.2))
        self._add("user_featurization", {"use_text_for_featurization": False})

    def bot(self, message: str, name: str, domain: bool = False, buttons: Optional[List[Dict[str, str]]] = None,
            **metadata: Any) -> None:
        self._tick(0.0001)
        data = {"text": message, "data": {**EMPTY_DATA, "buttons": buttons}}
        self._add("bot", data)
        self.rows[-1]["data"] = json.dumps({**json.loads(self.rows[-1]["data"]), "metadata": {
            ("utter_action" if domain else "message_name"): name, "model_id": MODEL_ID,
            "assistant_id": "northwind-shop-assistant", **metadata}})

    def listen(self) -> None:
        self.action("action_listen")

    def form_asks(self, form: str, slot: str, question: str, name: str) -> None:
        self.action(form)
        self.slot("requested_slot", slot)
        self.bot(question, name)
        self.listen()

    def verify(self, form: str, order: str, email: str, valid: bool = True) -> None:
        """The customer gives the order number and the email; the form checks the pair."""
        self.user(order, "inform", 1.0, entities=[{"entity": "order_id", "value": order, "start": 0,
                                                   "end": len(order), "extractor": "OrderNumberExtractor"}])
        self.form_asks(form, "order_email", "And the email address you used for that order?", "ask_order_email")
        self.user(email, "inform", 1.0, entities=[{"entity": "email", "value": email, "start": 0, "end": len(email),
                                                   "extractor": "RegexEntityExtractor"}])
        self.action(form)
        if valid:
            for name, value in (("verified_order_id", order), ("verified_email", email),
                                ("verification_failures", 0)):
                self.slot(name, value)
        else:
            for name in ("order_id", "order_email", "verified_order_id", "verified_email"):
                self.slot(name, None)

    def end_form(self, form: str) -> None:
        self.active_loop(None)
        self.slot("requested_slot", None)

    def happy_ending(self, rating: Optional[int]) -> None:
        self.user(self.rng.choice(["thank you so much!", "thanks, that was helpful", "great, thanks a lot"]),
                  "thank", sentiment="positive")
        self.action("utter_you_are_welcome")
        self.bot("You're welcome! Anything else I can do for you?", "utter_you_are_welcome", domain=True)
        self.listen()
        self.user("bye", "goodbye")
        self.action("utter_goodbye")
        self.bot("Goodbye, and thanks for shopping with us!", "utter_goodbye", domain=True)
        self.action("action_ask_satisfaction")
        self.bot("Before you go: how happy are you with this chat, from 1 (not at all) to 5 (very)?",
                 "ask_satisfaction", buttons=[{"title": str(value), "payload": str(value)} for value in range(1, 6)])
        self.slot("pending_offer", "satisfaction")
        self.listen()
        answer = str(rating) if rating else "it was fine"
        self.user(answer, "inform", 1.0)
        self.action("action_save_satisfaction")
        self.bot("Thank you, that helps us get better. Have a great day!", "satisfaction_thanks")
        self.slot("pending_offer", None)
        self.listen()
        self.ratings.append((answer, rating))


def _words(message: str) -> List[Tuple[int, str]]:
    found, position = [], 0
    for word in message.split():
        position = message.index(word, position)
        found.append((position, word))
        position += len(word)
    return found


# Six kinds of conversation; each returns nothing and fills the writer.


def order_status(w: ConversationWriter) -> None:
    order, email = w.rng.choice(ORDERS)
    if w.rng.random() < 0.5:
        w.user(w.rng.choice(["hi", "hello", "hey there"]), "greet", sentiment="positive")
        w.action("utter_greet")
        w.bot("Hi! I'm the Northwind Goods assistant. How can I help?", "utter_greet", domain=True)
        w.listen()
    w.user(w.rng.choice(["where is my order?", "where's my package", "track my order please"]), "order_status")
    w.active_loop("order_status_form")
    w.form_asks("order_status_form", "order_id", "What's your order number? e.g. 10001.", "ask_order_id")
    w.verify("order_status_form", order, email)
    w.end_form("order_status_form")
    w.action("action_order_status")
    w.bot(f"Order {order} is shipped. Items: 1 x Desk lamp. Carrier: DHL.", "order_status")
    w.listen()
    if w.rng.random() < 0.5:
        w.happy_ending(w.rng.choices([5, 4, 3, 2, 1, None], weights=[40, 30, 12, 6, 6, 6])[0])


def refused_return(w: ConversationWriter) -> None:
    order, email = w.rng.choice(ORDERS)
    w.user(w.rng.choice(["I want to return an item", "I'd like to send something back"]), "return_item")
    w.active_loop("return_form")
    w.form_asks("return_form", "order_id", "What's your order number? e.g. 10001.", "ask_order_id")
    w.verify("return_form", order, email)
    w.slot("return_item", "BOOT-42")
    w.end_form("return_form")
    w.action("action_submit_return")
    w.bot("Hiking boots (42) can't be returned: it was delivered more than 30 days ago.",
          "return_refused_outside_window")
    for slot in ("return_item", "return_reason", "refund_method", "pending_offer"):
        w.slot(slot, None)
    w.listen()
    w.user("ok, bye", "goodbye", sentiment="negative")
    w.action("utter_goodbye")
    w.bot("Goodbye, and thanks for shopping with us!", "utter_goodbye", domain=True)
    w.action("action_ask_satisfaction")
    w.listen()


def kept_cancellation(w: ConversationWriter) -> None:
    order, email = w.rng.choice(ORDERS)
    w.user(w.rng.choice(["please cancel my order", "I want to cancel an order"]), "cancel_order")
    w.active_loop("cancel_form")
    w.form_asks("cancel_form", "order_id", "What's your order number? e.g. 10001.", "ask_order_id")
    w.verify("cancel_form", order, email)
    w.action("action_ask_cancel_confirmed")
    w.slot("requested_slot", "cancel_confirmed")
    w.bot(f"Do you want me to cancel order {order}? This can't be undone.", "ask_cancel_confirmed",
          buttons=[{"title": "Yes, cancel it", "payload": "/affirm"}, {"title": "No, keep it", "payload": "/deny"}])
    w.listen()
    w.user("/deny", "deny", 1.0)
    w.slot("cancel_confirmed", False)
    w.action("cancel_form")
    w.end_form("cancel_form")
    w.action("action_submit_cancel")
    w.bot(f"Okay, I've left order {order} as it is.", "cancel_kept")
    w.slot("cancel_confirmed", None)
    w.listen()


def handoff_after_failures(w: ConversationWriter) -> None:
    order, _ = w.rng.choice(ORDERS)
    w.user("this is ridiculous, where is my refund?!", "refund_status", sentiment="negative", frustrated=True)
    w.active_loop("refund_form")
    w.bot("I'm sorry about this, that sounds frustrating. Let me help you sort it out.", "acknowledge_upset")
    w.form_asks("refund_form", "order_id", "What's your order number? e.g. 10001.", "ask_order_id")
    for attempt in range(1, 4):
        w.verify("refund_form", order, w.rng.choice(["x@example.org", "nobody@example.net"]), valid=False)
        w.slot("verification_failures", attempt)
        if attempt < 3:
            w.bot("I couldn't find an order with that number and email address together.", "verification_failed")
            w.slot("requested_slot", "order_id")
            w.bot("What's your order number? e.g. 10001.", "ask_order_id")
            w.listen()
    w.end_form("refund_form")
    w.action("action_refund_status")
    w.bot("I still couldn't match that order number and email. Would you like me to pass this to a person?",
          "verification_locked")
    reason = "could not verify order number and email"
    for name, value in (("verification_failures", 0), ("pending_offer", "handoff"), ("handoff_reason", reason)):
        w.slot(name, value)
    w.listen()
    w.user("yes please", "affirm")
    w.action("action_handoff")
    w.bot("I've passed our conversation to our customer service team (ticket H-1).", "handoff_created")
    w.slot("pending_offer", None)
    w.slot("handoff_reason", None)
    w.listen()
    w.tickets.append(reason)


def misunderstood(w: ConversationWriter) -> None:
    w.user(w.rng.choice(["wher iz my pakage", "refnd pls", "the payment thing"]), "nlu_fallback", 0.8)
    w.action("action_fallback")
    w.bot("I'm not sure I got that. Did you mean one of these?", "clarify", clarification=True,
          buttons=[{"title": "Where is my order?", "payload": "/order_status"}])
    w.listen()
    w.user("/policy_shipping", "policy_shipping", 1.0)
    w.action("action_answer_policy")
    w.bot("Standard shipping takes 3-5 business days.", "policy_answer")
    w.listen()
    w.user(w.rng.choice(["what's the weather like?", "tell me a joke"]), "out_of_scope", 0.93)
    w.action("action_fallback")
    w.bot("Sorry, I can't help with that.", "out_of_scope")
    w.listen()
    w.user("I want to talk to a human", "human_handoff")
    w.action("action_handoff")
    w.bot("I've passed our conversation to our customer service team (ticket H-2).", "handoff_created")
    w.slot("pending_offer", None)
    w.slot("handoff_reason", None)
    w.listen()
    w.tickets.append("customer asked for a person")


def policy_questions(w: ConversationWriter) -> None:
    for question, intent in w.rng.sample([("how long does shipping take?", "policy_shipping"),
                                          ("what payment methods do you accept?", "policy_payment"),
                                          ("when are you open?", "policy_contact"),
                                          ("can I pay with paypal and get a gift receipt?", "ask_question")], 3):
        w.user(question, intent)
        if intent == "ask_question":
            w.action("action_generate_reply")
            w.bot("Yes, we accept PayPal.", "knowledge_answer", knowledge_answer=True,
                  generator={"source": "generated", "passage": "payment", "score": 0.71, "rejected": []})
        else:
            w.action("action_answer_policy")
            w.bot("Here is the answer from our policies.", "policy_answer")
        w.listen()
    w.happy_ending(w.rng.choice([5, 4]))


KINDS: List[Tuple[str, Callable[[ConversationWriter], None], int]] = [
    ("order_status", order_status, 30), ("refused_return", refused_return, 15),
    ("kept_cancellation", kept_cancellation, 15), ("handoff_after_failures", handoff_after_failures, 6),
    ("misunderstood", misunderstood, 15), ("policy_questions", policy_questions, 15)]


def synthesise(count: int, seed: int = 13, now: Optional[datetime] = None, days: float = 7,
               ) -> Tuple[List[Row], List[Tuple[str, str, datetime]], List[Tuple[str, Optional[int], str, datetime]],
                          Dict[str, int]]:
    """`count` conversations spread over the `days` before `now`: event rows, handoff tickets (conversation, reason,
    created), satisfaction answers (conversation, rating, answer, created), and how many of each kind."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    rows, tickets, feedback, kinds = [], [], [], {name: 0 for name, _, _ in KINDS}
    for index in range(count):
        name, build, _ = rng.choices(KINDS, weights=[weight for _, _, weight in KINDS])[0]
        start = (now - timedelta(days=days * rng.random())).timestamp() - 600
        writer = ConversationWriter(f"synthetic-{seed}-{index:05d}-{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}",
                                    start, random.Random(rng.random()))
        writer.session_start()
        build(writer)
        rows.extend(writer.rows)
        created = datetime.fromtimestamp(writer.clock, UTC).replace(tzinfo=None)
        tickets.extend((writer.sender, reason, created) for reason in writer.tickets)
        feedback.extend((writer.sender, rating, answer, created) for answer, rating in writer.ratings)
        kinds[name] += 1
    return rows, tickets, feedback, kinds


def fill(engine: Engine, rows: List[Row], tickets, feedback, batch: int = 20_000) -> None:
    """The events table (Rasa's schema) and the shop's tables, with the synthesised rows."""
    from shop.models import Base, HandoffTicket, SatisfactionFeedback

    METADATA.create_all(engine)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        for start in range(0, len(rows), batch):
            connection.execute(insert(EVENTS), rows[start:start + batch])
        if tickets:
            connection.execute(insert(HandoffTicket.__table__), [
                {"conversation_id": sender, "reason": reason, "transcript": "", "status": "open",
                 "created_at": created} for sender, reason, created in tickets])
        if feedback:
            connection.execute(insert(SatisfactionFeedback.__table__), [
                {"conversation_id": sender, "rating": rating, "answer": answer, "created_at": created}
                for sender, rating, answer, created in feedback])


def time_report(tracker_url: str, out: Path) -> Tuple[float, Dict[str, Any]]:
    from analytics.__main__ import main

    started = time.perf_counter()
    status = main(["report", "--since", "8d", "--tracker-store", tracker_url, "--database", tracker_url,
                   "--out", str(out)])
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"report failed with exit status {status}")
    return seconds, json.loads((out / "report.json").read_text())


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server to create (and drop) a fresh database on; 'none' to skip")
    args = parser.parse_args(argv)
    print(f"synthesising {args.conversations} conversations ...", flush=True)
    rows, tickets, feedback, kinds = synthesise(args.conversations)
    print(f"  {len(rows)} events ({len(rows) / args.conversations:.1f} per conversation), {len(tickets)} tickets, "
          f"{len(feedback)} satisfaction answers", flush=True)
    results: Dict[str, Any] = {"conversations": args.conversations, "events": len(rows),
                               "events_per_conversation": round(len(rows) / args.conversations, 1),
                               "event_bytes": sum(len(row["data"]) for row in rows), "kinds": kinds,
                               "limit_s": LIMIT_S, "stores": {}}
    with tempfile.TemporaryDirectory(prefix="report-speed-") as work:
        path = Path(work) / "tracker.db"
        stores: List[Tuple[str, str, Optional[Callable[[], None]]]] = [("sqlite", f"sqlite:///{path}", None)]
        if args.postgres != "none":
            server = make_url(args.postgres)
            database = f"report_speed_{uuid.uuid4().hex[:8]}"
            admin = create_engine(server, future=True, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{database}"'))

            def drop(admin=admin, database=database) -> None:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
                admin.dispose()

            stores.append(("postgresql", server.set(database=database).render_as_string(hide_password=False), drop))
        try:
            for name, url, _ in stores:
                engine = create_engine(url, future=True)
                started = time.perf_counter()
                fill(engine, rows, tickets, feedback)
                engine.dispose()
                load_s = time.perf_counter() - started
                print(f"{name}: loaded in {load_s:.1f} s; timing the report ...", flush=True)
                seconds, report = time_report(url, Path(work) / f"report-{name}")
                figures = report["figures"]
                results["stores"][name] = {
                    "report_s": round(seconds, 2), "read_s": report["source"]["read_s"], "load_s": round(load_s, 1),
                    "under_limit": seconds < LIMIT_S, "conversations_reported": figures["volume"]["conversations"],
                    "messages_reported": figures["volume"]["messages"],
                    "handoffs_reported": figures["handoffs"]["tickets"], "ratings_reported": figures["csat"]["ratings"],
                    "html_bytes": (Path(work) / f"report-{name}" / "report.html").stat().st_size}
                print(f"{name}: report in {seconds:.1f} s (reading {report['source']['read_s']} s), "
                      f"{figures['volume']['conversations']} conversations", flush=True)
        finally:
            for _, _, drop in stores:
                if drop:
                    drop()
    write_results("report-speed", results)
    return 0 if all(store["under_limit"] and store["conversations_reported"] == args.conversations
                    for store in results["stores"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
