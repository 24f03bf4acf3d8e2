"""The report's figures: what the conversations of a period (analytics.conversations) and the shop's tables
(handoff_tickets, satisfaction_feedback) add up to. Plain numbers and lists, JSON as they are; analytics/report.py
draws and writes them. Every figure is defined in DEFINITIONS, which the page and docs/learning-loop.md repeat.

A conversation is one sender id with at least one customer message in the period; a message is one customer
message (a user event, button clicks included). What the bot said is known by name: the catalogue message
(actions/responses.yml, bot event metadata `message_name`) or the domain response (`utter_action`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from analytics.conversations import Conversation, Turn
from shop.order_numbers import OrderNumberFormat, loosen


@dataclass(frozen=True)
class Skill:
    """An order skill: the actions that run it, the messages that end it well, the prefix of its refusals."""

    title: str
    actions: frozenset
    completed: frozenset
    refusal_prefix: Optional[str] = None


SKILLS: Dict[str, Skill] = {
    "order_status": Skill("Where is my order", frozenset({"order_status_form", "action_order_status"}),
                          frozenset({"order_status"})),
    "return": Skill("Return an item", frozenset({"return_form", "action_ask_return_item", "action_submit_return"}),
                    frozenset({"return_created"}), "return_refused_"),
    "refund": Skill("Where is my refund", frozenset({"refund_form", "action_refund_status"}),
                    frozenset({"refund_status", "no_refunds"})),
    "cancel": Skill("Cancel an order",
                    frozenset({"cancel_form", "action_ask_cancel_confirmed", "action_submit_cancel"}),
                    frozenset({"order_cancelled", "cancel_kept"}), "cancel_refused_"),
}
ACTION_SKILL = {action: name for name, skill in SKILLS.items() for action in skill.actions}
VERIFICATION_REFUSALS = frozenset({"verification_failed", "verification_locked"})
# The bot said it could not help with the message.
FALLBACK_MESSAGES = frozenset({"default", "out_of_scope", "offer_handoff_not_understood", "no_knowledge",
                               "no_knowledge_in_form"})
ANSWER_MESSAGES = frozenset({"policy_answer", "knowledge_answer"})  # a question answered from the knowledge base
HANDOFF_MESSAGE = "handoff_created"
ASK_SATISFACTION = "ask_satisfaction"
SAVE_SATISFACTION = "action_save_satisfaction"
DEFAULT_HANDOFF_REASON = "customer asked for a person"  # action_handoff's reason when the slot holds none
NEGATIVE_LABELS = frozenset({"negative"})
CONFIDENCE_BINS = 10
LATENCY_EDGES_S = (0, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)  # the last bucket is "more than 30 s"
TOP_INTENTS = 10
MAX_EXAMPLES = 8

DEFINITIONS: Dict[str, str] = {
    "conversations": "Sender ids with at least one customer message in the period; a day's conversations are "
                     "counted on the day of their first customer message (UTC).",
    "messages": "Customer messages (user events, button clicks included) in the period, per day of sending (UTC).",
    "containment": "Share of conversations that reached a skill's outcome (order status shown, return created or "
                   "refused by a rule, refund status shown, order cancelled, kept or refused by a rule, a policy or "
                   "knowledge answer) and had no handoff.",
    "handoff_rate": "Share of conversations in which a handoff ticket was created (the bot said handoff_created).",
    "handoffs_by_reason": "Handoff tickets by their reason (handoff_tickets.reason; without the shop's tables, the "
                          "handoff_reason slot when the ticket was made).",
    "fallback_rate": "Customer messages the bot answered that it could not help with (default, out_of_scope, "
                     "offer_handoff_not_understood, no_knowledge), per message and share of conversations with one.",
    "clarification_rate": "Customer messages answered with a \"Did you mean ...?\" question (clarification: true), "
                          "per message and share of conversations with one.",
    "funnel": "Per order skill, conversations that started its form; verified: the order number and email matched "
              "(verified_order_id set); completed: its outcome message; refused: not completed and refused by a "
              "rule (return_refused_*, cancel_refused_*) or left unverified after verification_failed / "
              "verification_locked; unfinished: the rest.",
    "csat": "Answers to the satisfaction question in the period (satisfaction_feedback): ratings 1-5, their "
            "average, answers without a rating; asked: conversations where the bot asked.",
    "negative": "Conversations with a customer message whose sentiment label was negative or that the "
                "FrustrationDetector marked frustrated; next: handoff at or after the first such message, else "
                "resolved (a skill's outcome at or after it), else abandoned.",
    "intent_confidence": "The intent classifier's confidence in its best intent (nlu_fallback left out) for each "
                         "typed customer message; button clicks (\"/intent\") are left out.",
    "top_intents": "The intents NLU gave customer messages (nlu_fallback: unsure), button clicks included.",
    "latency": "Seconds from a customer message's user event (logged once NLU has parsed it, so NLU time is not "
               "in it) to the bot's last action or message before it listened again; nearest-rank p50 and p95.",
}

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
EMAIL_MASK = "[email]"
ORDER_MASK = "[order number]"


def masker(order_numbers: OrderNumberFormat) -> Callable[[str], str]:
    """A function that replaces every email address and order number in a text: the shop's own order-number
    pattern as customers type it (OrderNumberFormat.find), then the loosened pattern anywhere between non-word
    characters, which also catches numbers `find` leaves alone on purpose (\"10002/10003\")."""
    anywhere = re.compile(rf"(?<![A-Za-z0-9])(?:{loosen(order_numbers.pattern)})(?![A-Za-z0-9])", re.IGNORECASE)

    def mask(text: str) -> str:
        text = EMAIL.sub(EMAIL_MASK, text or "")
        for match in reversed(order_numbers.find(text)):
            text = text[:match.start()] + ORDER_MASK + text[match.end():]
        return anywhere.sub(ORDER_MASK, text)

    return mask


@dataclass
class SkillFacts:
    started: bool = False
    verified: bool = False
    verified_at_end: bool = False
    completed: bool = False
    rule_refusal: Optional[str] = None
    verification_refusal: Optional[str] = None

    @property
    def outcome(self) -> Tuple[str, Optional[str]]:
        """('completed' | 'refused' | 'unfinished', the refusal's message name)."""
        if self.completed:
            return "completed", None
        if self.rule_refusal:
            return "refused", self.rule_refusal
        if self.verification_refusal and not self.verified_at_end:
            return "refused", self.verification_refusal
        return "unfinished", None


@dataclass
class Facts:
    """What one conversation did, by turn index."""

    skills: Dict[str, SkillFacts] = field(default_factory=dict)
    handoffs: List[Tuple[int, str]] = field(default_factory=list)  # (turn, reason from the handoff_reason slot)
    outcome_turns: List[int] = field(default_factory=list)
    fallback_turns: List[int] = field(default_factory=list)
    clarification_turns: int = 0
    first_negative: Optional[int] = None
    satisfaction_asked: bool = False
    satisfaction_answers: List[str] = field(default_factory=list)

    @property
    def contained(self) -> bool:
        return not self.handoffs and bool(self.outcome_turns)


def analyse(conversation: Conversation) -> Facts:
    facts = Facts()
    state: Dict[str, Any] = {}
    for index, turn in enumerate(conversation.turns):
        names = [message.name for message in turn.bot]
        reason = state.get("handoff_reason")
        for name, value in turn.slots:
            if name == "handoff_reason" and value:
                reason = value
            state[name] = value
        verified = bool(state.get("verified_order_id"))
        skill_name = next((ACTION_SKILL[action] for action in reversed(turn.actions) if action in ACTION_SKILL), None)
        if skill_name:
            skill = SKILLS[skill_name]
            skill_facts = facts.skills.setdefault(skill_name, SkillFacts())
            skill_facts.started = True
            skill_facts.verified = skill_facts.verified or verified
            skill_facts.verified_at_end = verified
            for name in names:
                if name in skill.completed:
                    skill_facts.completed = True
                elif skill.refusal_prefix and name and name.startswith(skill.refusal_prefix):
                    skill_facts.rule_refusal = name
                elif name in VERIFICATION_REFUSALS:
                    skill_facts.verification_refusal = name
        if any(reaches_outcome(name) for name in names):
            facts.outcome_turns.append(index)
        if HANDOFF_MESSAGE in names:
            facts.handoffs.append((index, str(reason or DEFAULT_HANDOFF_REASON)))
        if any(name in FALLBACK_MESSAGES for name in names):
            facts.fallback_turns.append(index)
        if any(message.clarification for message in turn.bot):
            facts.clarification_turns += 1
        if facts.first_negative is None and (turn.sentiment in NEGATIVE_LABELS or turn.frustrated is True):
            facts.first_negative = index
        if ASK_SATISFACTION in names:
            facts.satisfaction_asked = True
        if SAVE_SATISFACTION in turn.actions:
            facts.satisfaction_answers.append(turn.text)
    return facts


def reaches_outcome(name: Optional[str]) -> bool:
    """True for a message that is a skill's outcome: completed, refused by a business rule, a question answered."""
    if not name:
        return False
    return name in ANSWER_MESSAGES or any(
        name in skill.completed or (skill.refusal_prefix and name.startswith(skill.refusal_prefix))
        for skill in SKILLS.values())


@dataclass
class ShopData:
    """Rows of the shop's own tables for the period; None where the tables could not be read."""

    tickets: Optional[Dict[str, List[str]]] = None  # conversation id -> reasons, oldest first
    ratings: Optional[List[Optional[int]]] = None  # satisfaction_feedback.rating, one per answer
    problem: Optional[str] = None


def rate(part: int, whole: int) -> Optional[float]:
    return round(part / whole, 4) if whole else None


def percentile(ordered: Sequence[float], q: float) -> Optional[float]:
    """Nearest-rank percentile of an ascending sequence."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def day_of(timestamp: float) -> date:
    return datetime.fromtimestamp(timestamp, UTC).date()


def days_between(first: date, last: date) -> List[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def best_confidence(turn: Turn) -> Optional[float]:
    """The classifier's confidence in its best real intent: nlu_fallback's own confidence is only the threshold."""
    ranked = [confidence for name, confidence in turn.ranking if name != "nlu_fallback"]
    if ranked:
        return max(ranked)
    return None if turn.intent == "nlu_fallback" else turn.confidence


def compute(conversations: Iterable[Conversation], since: Optional[datetime], until: datetime,
            shop: ShopData, mask: Callable[[str], str], parse_rating: Callable[[str], Optional[int]]) -> Dict[str, Any]:
    """Every figure of the report, as plain numbers, lists and dicts."""
    talked = [conversation for conversation in conversations if conversation.turns]
    all_facts = [analyse(conversation) for conversation in talked]
    n = len(talked)
    turns = [turn for conversation in talked for turn in conversation.turns]
    messages = len(turns)

    # Volume per day.
    conversations_per_day = Counter(day_of(conversation.turns[0].timestamp) for conversation in talked)
    messages_per_day = Counter(day_of(turn.timestamp) for turn in turns)
    known_days = sorted(set(conversations_per_day) | set(messages_per_day))
    first_day = since.date() if since else (known_days[0] if known_days else until.date())
    last_day = (until - timedelta(microseconds=1)).date()
    per_day = [{"day": day.isoformat(), "conversations": conversations_per_day.get(day, 0),
                "messages": messages_per_day.get(day, 0)} for day in days_between(first_day, max(first_day, last_day))]

    # Handoffs: reasons from the tickets when the shop's tables were read, else from the slot.
    reasons: Counter = Counter()
    tickets = {key: list(value) for key, value in (shop.tickets or {}).items()}
    for conversation, facts in zip(talked, all_facts, strict=True):
        from_tickets = tickets.get(conversation.sender_id, [])
        for _, slot_reason in facts.handoffs:
            reasons[from_tickets.pop(0) if from_tickets else slot_reason] += 1
    handed_off = sum(1 for facts in all_facts if facts.handoffs)
    contained = sum(1 for facts in all_facts if facts.contained)

    # Fallbacks and clarifications.
    fallback_messages = sum(len(facts.fallback_turns) for facts in all_facts)
    clarification_messages = sum(facts.clarification_turns for facts in all_facts)
    fallback_examples = [mask(conversation.turns[index].text) for conversation, facts in zip(talked, all_facts,
                                                                                               strict=True)
                         for index in facts.fallback_turns if conversation.turns[index].text.strip()
                         and not conversation.turns[index].text.startswith("/")]

    # Funnel.
    funnel = {}
    for name, skill in SKILLS.items():
        step = {"title": skill.title, "started": 0, "verified": 0, "completed": 0, "refused": 0, "unfinished": 0,
                "refusals": Counter()}
        for facts in all_facts:
            skill_facts = facts.skills.get(name)
            if not skill_facts:
                continue
            step["started"] += 1
            step["verified"] += skill_facts.verified
            outcome, rule = skill_facts.outcome
            step[outcome] += 1
            if rule:
                step["refusals"][rule] += 1
        step["refusals"] = dict(step["refusals"].most_common())
        funnel[name] = step

    # Satisfaction.
    if shop.ratings is not None:
        answers, csat_source = shop.ratings, "satisfaction_feedback"
    else:
        answers = [parse_rating(text) for facts in all_facts for text in facts.satisfaction_answers]
        csat_source = "conversations (the answers to the satisfaction question)"
    ratings = [rating for rating in answers if rating is not None]
    distribution = {str(value): ratings.count(value) for value in range(1, 6)}

    # Sentiment.
    negative = [(conversation, facts) for conversation, facts in zip(talked, all_facts, strict=True)
                if facts.first_negative is not None]
    after = Counter()
    for _, facts in negative:
        start = facts.first_negative
        if any(index >= start for index, _ in facts.handoffs):
            after["handoff"] += 1
        elif any(index >= start for index in facts.outcome_turns):
            after["resolved"] += 1
        else:
            after["abandoned"] += 1
    negative_examples = [mask(conversation.turns[facts.first_negative].text) for conversation, facts in negative
                         if not conversation.turns[facts.first_negative].text.startswith("/")]

    # Intents.
    confidences = [value for value in (best_confidence(turn) for turn in turns if not turn.text.startswith("/"))
                   if value is not None]
    histogram = [0] * CONFIDENCE_BINS
    for value in confidences:
        histogram[min(CONFIDENCE_BINS - 1, max(0, int(value * CONFIDENCE_BINS)))] += 1
    intents = Counter(turn.intent for turn in turns if turn.intent)
    examples: Dict[str, str] = {}
    for turn in turns:
        if turn.intent and turn.intent not in examples and turn.text.strip() and not turn.text.startswith("/"):
            examples[turn.intent] = mask(turn.text)

    # Latency.
    latencies = sorted(turn.latency_s for turn in turns if turn.latency_s is not None)

    return {
        "volume": {"conversations": n, "messages": messages,
                   "messages_per_conversation": round(messages / n, 2) if n else None, "per_day": per_day},
        "containment": {"conversations": n, "contained": contained, "rate": rate(contained, n),
                        "handed_off": handed_off, "neither": n - contained - handed_off},
        "handoffs": {"conversations": handed_off, "rate": rate(handed_off, n), "tickets": sum(reasons.values()),
                     "by_reason": dict(reasons.most_common()),
                     "reason_source": "handoff_tickets" if shop.tickets is not None else "handoff_reason slot"},
        "fallback": {"messages": fallback_messages, "rate_per_message": rate(fallback_messages, messages),
                     "conversations": sum(1 for facts in all_facts if facts.fallback_turns),
                     "rate_per_conversation": rate(sum(1 for facts in all_facts if facts.fallback_turns), n),
                     "examples": unique(fallback_examples)[-MAX_EXAMPLES:]},
        "clarification": {"messages": clarification_messages,
                          "rate_per_message": rate(clarification_messages, messages),
                          "conversations": sum(1 for facts in all_facts if facts.clarification_turns),
                          "rate_per_conversation": rate(sum(1 for facts in all_facts if facts.clarification_turns),
                                                        n)},
        "funnel": funnel,
        "csat": {"asked": sum(1 for facts in all_facts if facts.satisfaction_asked), "answers": len(answers),
                 "ratings": len(ratings), "without_rating": len(answers) - len(ratings),
                 "distribution": distribution,
                 "average": round(sum(ratings) / len(ratings), 2) if ratings else None, "source": csat_source},
        "negative": {"conversations": len(negative), "share": rate(len(negative), n),
                     "next": {key: after.get(key, 0) for key in ("handoff", "resolved", "abandoned")},
                     "examples": unique(negative_examples)[-MAX_EXAMPLES:]},
        "intents": {"messages_scored": len(confidences),
                    "confidence_bins": [round(index / CONFIDENCE_BINS, 2) for index in range(CONFIDENCE_BINS + 1)],
                    "confidence_counts": histogram,
                    "top": [{"intent": intent, "messages": count, "share": rate(count, messages),
                             "example": examples.get(intent, "")}
                            for intent, count in intents.most_common(TOP_INTENTS)]},
        "latency": {"messages": len(latencies), "p50_s": rounded(percentile(latencies, 0.50)),
                    "p95_s": rounded(percentile(latencies, 0.95)),
                    "max_s": rounded(latencies[-1] if latencies else None),
                    "bucket_edges_s": list(LATENCY_EDGES_S),
                    "bucket_counts": [sum(1 for value in latencies if low <= value < high) for low, high in
                                      zip(LATENCY_EDGES_S, LATENCY_EDGES_S[1:] + (math.inf,), strict=True)]},
    }


def unique(items: List[str]) -> List[str]:
    return list(dict.fromkeys(items))


def rounded(value: Optional[float], digits: int = 3) -> Optional[float]:
    return None if value is None else round(value, digits)
