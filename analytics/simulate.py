"""`python -m analytics simulate`: scripted customers talking to the real servers over the REST channel, so that the
report has traffic to show and the tests have counts to check it against.

    python -m analytics simulate --conversations 40 --url http://localhost:5005 --seed 7

Each conversation follows a scenario (order status, return, refund, cancellation, policy question, a person asked
for, a person after failed verification, off-topic, frustrated, misunderstood phrasing), with the demo shop's orders
and emails (shop/seed.py), answering whatever the bot asks. Seeded: the same seed plays the same scripts. Every
conversation has its own sender id, `<run prefix>-<number>-<scenario>`.

What the manifest records is what the simulator SAW in the bot's replies, never what it meant to happen: each reply
is recognised by its text (the wording in actions/responses.yml and domain.yml, matched as patterns), so a return
that a rerun finds already made is recorded as the refusal the bot gave. Its `totals` use the report's definitions
(analytics/figures.py), so a test can compare the two.

Returns and cancellations change the demo shop: most scenarios use orders whose answer is a refusal or a "no"
(read-only); a few really return an item or cancel an order.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import requests
import yaml

from analytics import UsageProblem
from analytics.figures import DEFAULT_HANDOFF_REASON, FALLBACK_MESSAGES, SKILLS, VERIFICATION_REFUSALS

ROOT = Path(__file__).resolve().parent.parent
MAX_TURNS = 24  # customer messages per conversation at most: a bot that keeps asking is not followed for ever

# ----------------------------------------------------------------------------------------------- the demo shop

# order, email (shop/seed.py), and what the order shows.
ALL_ORDERS = [("10001", "alice@example.com"), ("10002", "alice@example.com"), ("10003", "bob@example.com"),
              ("10004", "bob@example.com"), ("10005", "carol@example.com"), ("10006", "carol@example.com"),
              ("10007", "dan@example.com"), ("10008", "dan@example.com"), ("10009", "eve@example.com"),
              ("10010", "eve@example.com"), ("10011", "farid@example.com"), ("10012", "farid@example.com"),
              ("10013", "alice@example.com"), ("10014", "bob@example.com"), ("10015", "carol@example.com"),
              ("10016", "dan@example.com"), ("10017", "eve@example.com"), ("10018", "farid@example.com"),
              ("10019", "alice@example.com"), ("10020", "bob@example.com"), ("10021", "carol@example.com"),
              ("10022", "dan@example.com"), ("10023", "eve@example.com"), ("10024", "farid@example.com")]
EMAIL_OF = dict(ALL_ORDERS)
RETURN_REFUSED = ["10002", "10004", "10005", "10006", "10012", "10014", "10017", "10020", "10024"]  # read-only
RETURNABLE = ["10001", "10008", "10013", "10015", "10019", "10022"]  # a return is made (refused on a rerun)
REFUND_ORDERS = ["10001", "10003", "10006", "10007", "10009", "10018"]
CANCEL_REFUSED = ["10002", "10006", "10011", "10014", "10018", "10021"]  # shipped or cancelled: read-only
PENDING = ["10003", "10010", "10016", "10023"]  # "no" keeps them; "yes" cancels (refused on a rerun)
SAFE_PAIR = ("10002", "alice@example.com")  # every skill only reads it: status, refusals, no refunds
WRONG_EMAILS = ["mallory@example.com", "nobody@example.org", "someone@example.net"]

# --------------------------------------------------------------------------------------- what customers say

GREETINGS = ["hi", "hello", "hello there", "hi, I need some help"]
REQUESTS = {
    "order_status": ["where is my order?", "Where's my package?", "can you track my order", "has my order shipped?",
                     "I'd like to know the status of my order"],
    "return": ["I want to return an item", "I'd like to return something", "I need to send an item back",
               "start a return please"],
    "refund": ["where is my refund?", "what's the status of my refund", "has my refund been processed?"],
    "cancel": ["please cancel my order", "I want to cancel an order", "can you cancel my order?"],
}
POLICY_QUESTIONS = ["how long does shipping take?", "what is your return policy?",
                    "what payment methods do you accept?",
                    "when are you open?", "how long does a refund take?", "do you ship to Switzerland?"]
PERSON_REQUESTS = ["I want to talk to a human", "can I speak to a real person?", "agent please",
                   "connect me to customer service"]
OFF_TOPIC = ["what's the weather like today?", "can you recommend a good movie?", "who won the football game?",
             "tell me a joke", "what is the capital of France?", "do you like pizza?"]
MISUNDERSTOOD = ["wher iz my pakage", "refnd pls", "the payment thing", "about my stuff", "it never came back",
                 "cancle ordr", "money back for the shoes", "i wnat to retrun sth", "parcel?? where",
                 "issue with a package", "the label", "order problem", "hey its about #10002 (alice@example.com)"]
FRUSTRATED_OUTSIDE = [("I'm really annoyed, what payment methods do you even accept?",
                       "This is ridiculous, how long does shipping even take?")]
FRUSTRATED_IN_FORM = ["This is ridiculous, my order still hasn't arrived!",
                      "I've been waiting for weeks, this is unacceptable. Where is my order?"]
HAPPY = ["thank you so much, that was really helpful!", "thanks a lot, great help!"]
RATINGS: List[Tuple[str, Optional[int], int]] = [("5", 5, 30), ("4", 4, 25), ("3", 3, 12), ("2", 2, 6), ("1", 1, 5),
                                                 ("five", 5, 8), ("4 out of 5", 4, 8), ("it was fine", None, 6)]
REASONS = [("damaged", '/inform{"return_reason": "damaged"}'), ("it arrived broken", None),
           ("doesn't fit", '/inform{"return_reason": "doesn\'t fit"}'), ("changed my mind", None)]
METHODS = ["store credit", "original payment method", '/inform{"refund_method": "store_credit"}']

# The reason a handoff ticket gets (actions/), by what the bot offered before it; None: the customer asked.
OFFER_REASONS = {
    "verification_locked": "could not verify order number and email",
    "offer_handoff_not_understood": "the assistant did not understand",
    "no_knowledge": "a question the assistant could not answer",
    "offer_handoff_upset": "upset",
    "offer_handoff_upset_in_form": "upset",
}
REASON_CATEGORIES = {
    DEFAULT_HANDOFF_REASON: "asked",
    "could not verify order number and email": "verification",
    "the assistant did not understand": "not_understood",
    "a question the assistant could not answer": "no_answer",
    "upset": "upset",
}


def reason_category(reason: str) -> str:
    """The kind of a handoff reason: asked, verification, not_understood, no_answer, upset (actions/sentiment.py's
    two reasons for an upset customer both start with 'the customer'), or the reason itself."""
    if reason.startswith("the customer"):
        return "upset"
    return REASON_CATEGORIES.get(reason, reason)


# ----------------------------------------------------------------------------------------- reading the replies

YES_NO_OFFERS = {"verification_locked", "offer_handoff_not_understood", "offer_handoff_upset", "no_knowledge",
                 "cancel_refused_already_shipped"}
QUESTIONS = {"ask_order_id", "ask_order_email", "ask_which_item", "ask_return_reason", "ask_refund_method",
             "ask_cancel_confirmed", "ask_what_about_order", "ask_what_about_email", "ask_what_about_it", "clarify",
             "invalid_order_id", "invalid_email", "unknown_item", "invalid_reason", "invalid_refund_method",
             "ask_satisfaction"} | YES_NO_OFFERS
REVEALS = {"order_status": "order_status", "ask_which_item": "return", "ask_return_reason": "return",
           "ask_refund_method": "return", "unknown_item": "return", "invalid_reason": "return",
           "invalid_refund_method": "return", "return_created": "return", "ask_cancel_confirmed": "cancel",
           "order_cancelled": "cancel", "cancel_kept": "cancel", "refund_status": "refund", "no_refunds": "refund"}
REFUND_SENTENCE = re.compile(r"The refund of [\d.,]+ for .+ to .+\.", re.S)
FREE_TEXT = "free_text"  # a reply that is no catalogue message: a policy or knowledge answer


class ReplyNamer:
    """Names a reply text by the catalogue message or domain response whose wording it has."""

    def __init__(self, root: Path = ROOT) -> None:
        templates: Dict[str, str] = {}
        for name, entry in (yaml.safe_load((root / "actions" / "responses.yml").read_text()) or {}).items():
            templates[name] = entry["text"]
        domain = yaml.safe_load((root / "domain.yml").read_text()) or {}
        for name, variants in (domain.get("responses") or {}).items():
            for variant in variants:
                if variant.get("text"):
                    templates.setdefault(name, variant["text"])
        patterns = []
        for name, template in templates.items():
            parts = re.split(r"\{\w+\}", template)
            literal = sum(len(part) for part in parts)
            patterns.append((literal, name, re.compile(".+?".join(re.escape(part) for part in parts), re.S)))
        patterns.sort(key=lambda entry: -entry[0])
        self.patterns = [(name, pattern) for _, name, pattern in patterns]

    def name(self, text: str) -> str:
        text = (text or "").strip()
        for name, pattern in self.patterns:
            if pattern.fullmatch(text):
                return name
        if REFUND_SENTENCE.fullmatch(text):
            return "refund_status"
        return FREE_TEXT


@dataclass
class Reply:
    text: str
    name: str
    buttons: List[Dict[str, str]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ observation


@dataclass
class SkillSeen:
    started: bool = True
    verified: bool = False
    completed: bool = False
    rule: Optional[str] = None  # a business-rule refusal (return_refused_*, cancel_refused_*)
    verification: Optional[str] = None  # verification_failed / verification_locked

    def outcome(self) -> Tuple[str, Optional[str]]:
        if self.completed:
            return "completed", None
        if self.rule:
            return "refused", self.rule
        if self.verification and not self.verified:
            return "refused", self.verification
        return "unfinished", None


class Observer:
    """What one conversation showed, from the bot's replies alone, counted as the report counts it."""

    def __init__(self) -> None:
        self.skills: Dict[str, SkillSeen] = {}
        self.current: Optional[str] = None
        self.requested: Optional[str] = None  # the skill the customer just asked for, until the bot shows which
        self.messages = 0
        self.fallbacks = 0
        self.clarifications = 0
        self.outcomes = 0
        self.handoffs: List[str] = []
        self.open_reason: Optional[str] = None
        self.offer_pending = False
        self.acknowledged = 0
        self.satisfaction_asked = False
        self.rating_answer: Optional[Tuple[str, Optional[int]]] = None
        self.satisfaction: Optional[Dict[str, Any]] = None
        self.transcript: List[Dict[str, Any]] = []

    def skill(self, name: str) -> SkillSeen:
        """The skill the bot is in; a skill revealed as another than guessed takes over what was seen so far."""
        if self.current and self.current != name and self.current.startswith("unknown"):
            self.skills[name] = self.skills.pop(self.current)
        self.current = name
        return self.skills.setdefault(name, SkillSeen())

    def saw(self, sent: str, replies: List[Reply], declined: bool) -> None:
        names = [reply.name for reply in replies]
        self.messages += 1
        self.transcript.append({"customer": sent, "bot": names})
        if any(name in FALLBACK_MESSAGES for name in names):
            self.fallbacks += 1
        if "clarify" in names:
            self.clarifications += 1
        if "acknowledge_upset" in names:
            self.acknowledged += 1
        if self.satisfaction_asked and self.satisfaction is None and self.rating_answer is not None:
            answer, rating = self.rating_answer
            saved = "satisfaction_thanks" in names
            self.satisfaction = {"answer": answer, "rating": rating if saved else None, "saved": saved}
        offer_was_pending, self.offer_pending = self.offer_pending, False
        outcome = False
        for name in names:
            if name in ("ask_order_id", "ask_order_email") and self.current is None:
                self.skill(self.requested or f"unknown-{len(self.skills)}")
            elif name in REVEALS:
                seen = self.skill(REVEALS[name])
                seen.verified = True
                if name in SKILLS[REVEALS[name]].completed:
                    seen.completed, outcome, self.current = True, True, None
            elif name.startswith(("return_refused_", "cancel_refused_")):
                seen = self.skill("return" if name.startswith("return") else "cancel")
                seen.verified, seen.rule, outcome = True, name, True
                if name.startswith("cancel") or not self._asked(names, "ask_which_item"):
                    self.current = None
            elif name in VERIFICATION_REFUSALS:
                if self.current is None:
                    self.skill(self.requested or f"unknown-{len(self.skills)}")
                self.skills[self.current].verification = name
                if name == "verification_locked":
                    self.current = None
            elif name == "form_stopped":
                self.current = None
            elif name == FREE_TEXT:
                outcome = True
            if name in OFFER_REASONS:
                self.open_reason = OFFER_REASONS[name]
            if name in YES_NO_OFFERS:
                self.offer_pending = True
            if name == "handoff_created":
                self.handoffs.append(reason_category(self.open_reason or DEFAULT_HANDOFF_REASON))
                self.open_reason, self.current = None, None
            if name == "utter_anything_else" and declined and offer_was_pending:
                self.open_reason = None  # action_decline_offer clears the reason with the offer
            if name == "ask_satisfaction":
                self.satisfaction_asked = True
        self.outcomes += outcome
        self.requested = None

    @staticmethod
    def _asked(names: List[str], question: str) -> bool:
        return question in names

    def record(self) -> Dict[str, Any]:
        skills = {}
        for name, seen in self.skills.items():
            outcome, rule = seen.outcome()
            skills[name] = {"started": True, "verified": seen.verified, "outcome": outcome, "rule": rule}
        return {
            "messages": self.messages, "skills": skills, "handoffs": self.handoffs,
            "handoff": bool(self.handoffs), "fallback_messages": self.fallbacks,
            "clarification_messages": self.clarifications, "outcome_messages": self.outcomes,
            "contained": not self.handoffs and self.outcomes > 0, "acknowledged_upset": self.acknowledged,
            "satisfaction": {"asked": self.satisfaction_asked, **(self.satisfaction or {"answer": None,
                                                                                      "rating": None,
                                                                                      "saved": False})},
        }


# ------------------------------------------------------------------------------------------------- a customer


class Stop(Exception):
    """The conversation is over (the bot stopped answering, or too many turns)."""


class Customer:
    """One scripted customer: sends messages, answers what the bot asks, and lets the Observer watch."""

    def __init__(self, send: Callable[[str, str], List[Dict[str, Any]]], namer: ReplyNamer, sender: str,
                 rng: random.Random) -> None:
        self._send, self.namer, self.sender, self.rng = send, namer, sender, rng
        self.observer = Observer()
        self.last: List[Reply] = []
        self.order, self.emails = SAFE_PAIR[0], [SAFE_PAIR[1]]
        self.cancel_answer, self.accept_person, self.accept_return = "no", True, False
        self.skill_payload: Optional[str] = None
        self.used_orders: set = set()
        self.used_emails: set = set()

    def say(self, text: str, declined: bool = False) -> List[Reply]:
        if self.observer.messages >= MAX_TURNS:
            raise Stop("too many turns")
        raw = self._send(self.sender, text)
        self.last = [Reply(item.get("text") or "", self.namer.name(item.get("text") or ""), item.get("buttons") or [])
                     for item in raw if item.get("text")]
        self.observer.saw(text, self.last, declined)
        return self.last

    def ask(self, skill: Optional[str], text: str) -> None:
        """A request for a skill (the observer guesses the form from it until the bot shows which)."""
        self.observer.requested = skill
        self.say(text)
        self.answer_questions()

    def names(self) -> List[str]:
        return [reply.name for reply in self.last]

    def question(self) -> Optional[Reply]:
        questions = [reply for reply in self.last if reply.name in QUESTIONS]
        return questions[-1] if questions else None

    def answer_questions(self) -> None:
        """Answers whatever the bot asks until it asks nothing."""
        while True:
            question = self.question()
            if question is None:
                return
            answer, declined = self.answer(question)
            if answer is None:
                return
            self.say(answer, declined)

    def typed_order(self) -> str:
        self.used_orders.add(self.order)
        return self.rng.choice(["{}", "{}", "#{}", "order {}", "it's {}"]).format(self.order)

    def typed_email(self) -> str:
        email = self.emails.pop(0) if len(self.emails) > 1 else self.emails[0]
        self.used_emails.add(email)
        return self.rng.choice(["{}", "{}", "it's {}"]).format(email)

    def answer(self, question: Reply) -> Tuple[Optional[str], bool]:
        """(what to say, whether it declines an offer); None: leave the question unanswered."""
        name, rng = question.name, self.rng
        buttons = [button["payload"] for button in question.buttons]
        if name in ("ask_order_id", "invalid_order_id"):
            return self.typed_order(), False
        if name in ("ask_order_email", "invalid_email"):
            return self.typed_email(), False
        if name in ("ask_which_item", "unknown_item"):
            return (rng.choice(buttons) if buttons else "the first one"), False
        if name in ("ask_return_reason", "invalid_reason"):
            text, payload = rng.choice(REASONS)
            return (payload if payload and rng.random() < 0.5 else text), False
        if name in ("ask_refund_method", "invalid_refund_method"):
            return rng.choice(METHODS), False
        if name == "ask_cancel_confirmed":
            return self.cancel_answer, self.cancel_answer == "no"
        if name in ("ask_what_about_order", "ask_what_about_email", "ask_what_about_it"):
            return (self.skill_payload or (buttons[0] if buttons else "/order_status")), False
        if name == "clarify":
            return (buttons[0] if buttons else None), False
        if name == "cancel_refused_already_shipped":
            return ("yes" if self.accept_return else "no thanks"), not self.accept_return
        if name in YES_NO_OFFERS:
            return ("yes please" if self.accept_person else "no"), not self.accept_person
        if name == "ask_satisfaction":
            answer = rng.choices(RATINGS, weights=[weight for _, _, weight in RATINGS])[0]
            self.observer.rating_answer = (answer[0], answer[1])
            return answer[0], False
        return None, False

    def close(self, happy: bool) -> None:
        """How the conversation ends: thanks and goodbye (and a rating when asked), or the customer just leaves."""
        if happy:
            self.say(self.rng.choice(HAPPY))
            self.say("bye")
            self.answer_questions()
        elif self.rng.random() < 0.4:
            self.say("bye")
            self.answer_questions()


# -------------------------------------------------------------------------------------------------- scenarios


def order_status(customer: Customer, rng: random.Random) -> Dict[str, Any]:
    customer.order, email = rng.choice(ALL_ORDERS)
    wrong_first = rng.random() < 0.2
    customer.emails = [rng.choice(WRONG_EMAILS), email] if wrong_first else [email]
    if rng.random() < 0.5:
        customer.say(rng.choice(GREETINGS))
    customer.ask("order_status", rng.choice(REQUESTS["order_status"]))
    customer.close(rng.random() < 0.5)
    return {"order": customer.order, "wrong_email_first": wrong_first}


def return_item(customer: Customer, rng: random.Random) -> Dict[str, Any]:
    customer.order = rng.choice(RETURNABLE if rng.random() < 0.3 else RETURN_REFUSED)
    customer.emails = [EMAIL_OF[customer.order]]
    customer.ask("return", rng.choice(REQUESTS["return"]))
    customer.close(rng.random() < 0.4)
    return {"order": customer.order}


def refund(customer: Customer, rng: random.Random) -> Dict[str, Any]:
    customer.order = rng.choice(REFUND_ORDERS)
    customer.emails = [EMAIL_OF[customer.order]]
    customer.ask("refund", rng.choice(REQUESTS["refund"]))
    customer.close(rng.random() < 0.5)
    return {"order": customer.order}


def cancel(customer: Customer, rng: random.Random) -> Dict[str, Any]:
    roll = rng.random()
    customer.order = rng.choice(CANCEL_REFUSED if roll < 0.5 else PENDING)
    customer.cancel_answer = "yes" if roll >= 0.8 else rng.choice(["no", "no, keep it", "/deny"])
    customer.emails = [EMAIL_OF[customer.order]]
    customer.ask("cancel", rng.choice(REQUESTS["cancel"]))
    customer.close(rng.random() < 0.3)
    return {"order": customer.order, "confirm": customer.cancel_answer}


def policy(customer: Customer, rng: random.Random) -> Dict[str, Any]:
    questions = rng.sample(POLICY_QUESTIONS, rng.choice([1, 1, 2]))
    for question in questions:
        customer.ask(None, question)
    customer.close(rng.random() < 0.6)
    return {"questions": questions}


def handoff_request(customer: Customer, rng: random.Random) -> Dict[str, Any]:
    in_form = rng.random() < 0.4
    if in_form:
        customer.observer.requested = "refund"
        customer.say(rng.choice(REQUESTS["refund"]))
    customer.say(rng.choice(PERSON_REQUESTS))
    customer.answer_questions()
    return {"in_form": in_form}


def handoff_verification(customer: Customer, rng: random.Random) -> Dict[str, Any]:
    skill = rng.choice(["order_status", "refund"])
    customer.order = rng.choice(ALL_ORDERS)[0]
    customer.emails = rng.sample(WRONG_EMAILS, 3) + [EMAIL_OF[customer.order]]
    customer.accept_person = rng.random() < 0.8
    customer.ask(skill, rng.choice(REQUESTS[skill]))
    return {"skill": skill, "order": customer.order, "accepts_person": customer.accept_person}


def off_topic(customer: Customer, rng: random.Random) -> Dict[str, Any]:
    asked = rng.sample(OFF_TOPIC, rng.choice([1, 2]))
    customer.accept_person = False
    for message in asked:
        customer.ask(None, message)
    customer.close(False)
    return {"messages": asked}


def frustrated(customer: Customer, rng: random.Random) -> Dict[str, Any]:
    customer.accept_person = rng.random() < 0.6
    if rng.random() < 0.5:
        first, second = rng.choice(FRUSTRATED_OUTSIDE)
        customer.ask(None, first)
        customer.ask(None, second)
        return {"where": "outside a form", "accepts_person": customer.accept_person}
    customer.order, email = rng.choice(ALL_ORDERS)
    customer.emails = [email]
    customer.observer.requested = "order_status"
    customer.say(rng.choice(FRUSTRATED_IN_FORM))
    offered = any(reply.name == "offer_handoff_upset_in_form" for reply in customer.last)
    if offered and customer.accept_person:
        customer.say("/human_handoff")
        customer.answer_questions()
    else:
        customer.answer_questions()
        customer.close(False)
    return {"where": "in a form", "offered_in_form": offered, "accepts_person": customer.accept_person}


def misunderstood(customer: Customer, rng: random.Random) -> Dict[str, Any]:
    messages = rng.sample(MISUNDERSTOOD, 2)
    customer.accept_person = rng.random() < 0.5
    customer.ask(None, messages[0])
    if any(name in FALLBACK_MESSAGES for name in customer.names()):
        customer.ask(None, messages[1])
    customer.close(False)
    return {"messages": messages, "accepts_person": customer.accept_person}


SCENARIOS: Dict[str, Tuple[Callable[[Customer, random.Random], Dict[str, Any]], int]] = {
    "order_status": (order_status, 16), "return": (return_item, 13), "refund": (refund, 10), "cancel": (cancel, 11),
    "policy": (policy, 9), "handoff_request": (handoff_request, 7), "handoff_verification": (handoff_verification, 6),
    "off_topic": (off_topic, 7), "frustrated": (frustrated, 9), "misunderstood": (misunderstood, 12),
}


def plan(count: int, rng: random.Random) -> List[str]:
    """The scenarios of a run: every scenario once (shuffled) while there is room, then drawn by weight."""
    names = list(SCENARIOS)
    rng.shuffle(names)
    chosen = names[:count]
    weights = [weight for _, weight in SCENARIOS.values()]
    chosen += rng.choices(list(SCENARIOS), weights=weights, k=max(0, count - len(chosen)))
    return chosen


# ------------------------------------------------------------------------------------------------------- a run


def rest_sender(url: str, timeout_s: float) -> Callable[[str, str], List[Dict[str, Any]]]:
    session = requests.Session()
    webhook = f"{url.rstrip('/')}/webhooks/rest/webhook"

    def send(sender: str, message: str) -> List[Dict[str, Any]]:
        response = session.post(webhook, json={"sender": sender, "message": message}, timeout=timeout_s)
        response.raise_for_status()
        return response.json()

    return send


def simulate(url: str, conversations: int, seed: int = 7, prefix: Optional[str] = None,
             progress: Callable[[str], None] = print, timeout_s: float = 120,
             send: Optional[Callable[[str, str], List[Dict[str, Any]]]] = None) -> Dict[str, Any]:
    """Plays `conversations` scripted conversations against Rasa at `url`; returns the manifest."""
    if conversations < 1:
        raise UsageProblem("--conversations must be at least 1")
    rng = random.Random(seed)
    prefix = prefix or f"sim-{datetime.now(UTC):%Y%m%dT%H%M%S}-s{seed}"
    send = send or rest_sender(url, timeout_s)
    namer = ReplyNamer()
    started_at, started = datetime.now(UTC), time.perf_counter()
    records: List[Dict[str, Any]] = []
    for index, scenario in enumerate(plan(conversations, rng), start=1):
        sender = f"{prefix}-{index:04d}-{scenario}"
        customer = Customer(send, namer, sender, random.Random(rng.random()))
        error = None
        try:
            details = SCENARIOS[scenario][0](customer, customer.rng)
        except Stop as stop:
            details, error = {}, str(stop)
        except requests.RequestException as problem:
            if not records and customer.observer.messages == 0:
                raise UsageProblem(f"cannot talk to Rasa at {url}: {problem.__class__.__name__}: "
                                   f"{str(problem)[:200]}") from None
            details, error = {}, f"{problem.__class__.__name__}: {str(problem)[:200]}"
        record = {"sender_id": sender, "scenario": scenario, "details": details,
                  "orders_used": sorted(customer.used_orders), "emails_used": sorted(customer.used_emails),
                  **customer.observer.record(), "transcript": customer.observer.transcript, "error": error}
        records.append(record)
        progress(f"[{index:>{len(str(conversations))}}/{conversations}] {sender}: {describe(record)}")
    return {
        "run": {"prefix": prefix, "seed": seed, "url": url, "conversations": conversations,
                "started_at": started_at.isoformat(timespec="seconds"),
                "seconds": round(time.perf_counter() - started, 1)},
        "totals": totals(records),
        "conversations": records,
    }


def describe(record: Dict[str, Any]) -> str:
    parts = [f"{name} {seen['outcome']}" + (f" ({seen['rule']})" if seen["rule"] else "")
             for name, seen in record["skills"].items()]
    if record["handoffs"]:
        parts.append(f"handoff ({', '.join(record['handoffs'])})")
    if record["fallback_messages"]:
        parts.append(f"{record['fallback_messages']} fallback")
    if record["clarification_messages"]:
        parts.append(f"{record['clarification_messages']} did-you-mean")
    if record["outcome_messages"] and not record["skills"]:
        parts.append(f"{record['outcome_messages']} answered")
    if record["satisfaction"]["saved"]:
        parts.append(f"rating {record['satisfaction']['rating']}")
    if record["error"]:
        parts.append(f"ERROR {record['error']}")
    return f"{record['messages']} messages; " + ("; ".join(parts) or "no outcome")


def totals(records: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The run's counts, by the report's definitions, for comparing with report.json."""
    funnel = {name: {"started": 0, "verified": 0, "completed": 0, "refused": 0, "unfinished": 0, "refusals": Counter()}
              for name in SKILLS}
    for record in records:
        for name, seen in record["skills"].items():
            if name not in funnel:
                continue  # a form the bot never showed the skill of
            step = funnel[name]
            step["started"] += 1
            step["verified"] += seen["verified"]
            step[seen["outcome"]] += 1
            if seen["rule"]:
                step["refusals"][seen["rule"]] += 1
    for step in funnel.values():
        step["refusals"] = dict(step["refusals"])
    ratings = [record["satisfaction"]["rating"] for record in records if record["satisfaction"]["saved"]]
    return {
        "conversations": len(records),
        "messages": sum(record["messages"] for record in records),
        "contained": sum(record["contained"] for record in records),
        "handed_off": sum(record["handoff"] for record in records),
        "handoffs_by_reason": dict(Counter(reason for record in records for reason in record["handoffs"])),
        "fallback_messages": sum(record["fallback_messages"] for record in records),
        "fallback_conversations": sum(1 for record in records if record["fallback_messages"]),
        "clarification_messages": sum(record["clarification_messages"] for record in records),
        "clarification_conversations": sum(1 for record in records if record["clarification_messages"]),
        "funnel": funnel,
        "satisfaction_asked": sum(1 for record in records if record["satisfaction"]["asked"]),
        "satisfaction_answers": len(ratings),
        "ratings": {str(value): ratings.count(value) for value in range(1, 6)},
        "unknown_skills": sum(1 for record in records for name in record["skills"] if name not in funnel),
        "errors": sum(1 for record in records if record["error"]),
        "scenarios": dict(Counter(record["scenario"] for record in records)),
    }


# ---------------------------------------------------------------------------------------------------------- CLI


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate", help="scripted customers talk to the running bot over REST; a manifest of what they saw",
        description="Plays N scripted conversations (order status, returns, refunds, cancellations, policy "
                    "questions, handoffs, off-topic, frustrated and misunderstood customers, satisfaction ratings) "
                    "against the real servers and writes what each one saw to a manifest.")
    parser.add_argument("--conversations", type=int, required=True, help="how many conversations")
    parser.add_argument("--url", default="http://localhost:5005", help="the Rasa server (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="the same seed plays the same scripts (default: 7)")
    parser.add_argument("--manifest", type=Path, default=Path("var/simulate/manifest.json"),
                        help="where to write the manifest (default: %(default)s)")
    parser.add_argument("--prefix", default=None, help="sender id prefix of this run (default: sim-<time>-s<seed>)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    manifest = simulate(args.url, args.conversations, args.seed, args.prefix,
                        progress=lambda line: print(line, flush=True))
    try:
        args.manifest.parent.mkdir(parents=True, exist_ok=True)
        args.manifest.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise UsageProblem(f"--manifest {args.manifest}: {error.strerror or error}") from None
    summary = manifest["totals"]
    print(f"{summary['conversations']} conversations, {summary['messages']} messages, {summary['contained']} "
          f"contained, {summary['handed_off']} handed off, {summary['errors']} errors in "
          f"{manifest['run']['seconds']} s; manifest: {args.manifest}", file=sys.stdout)
    return 0 if not summary["errors"] else 1
