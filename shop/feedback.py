"""What customers felt and said about the service: per-message sentiment and satisfaction answers.

Why in the shop's database: Rasa's default tracker store lives in memory and is gone at restart; these rows stay,
next to the orders and handoff tickets, for whoever analyses the conversations later, e.g.

    select label, count(*) from conversation_sentiment group by label;
    select avg(rating) from satisfaction_feedback where created_at > date('now', '-7 day');
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from shop.models import ConversationSentiment, SatisfactionFeedback

RATING_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
RATING = re.compile(r"(?<![\d.])([1-5])(?:\s*(?:/|out of|of)\s*5)?(?![\d.])|\b(one|two|three|four|five)\b", re.I)


@dataclass(frozen=True)
class TurnSentiment:
    """One customer message's sentiment, as the NLU component reported it."""

    message_key: str
    turn: int
    label: str
    confidence: float
    scores: dict
    intent: Optional[str]


def record_turns(session: Session, conversation_id: str, turns: Iterable[TurnSentiment]) -> int:
    """Stores the turns not stored yet (the action server sees the same messages many times); returns how many."""
    conversation_id = conversation_id[:255]
    known = set(session.scalars(select(ConversationSentiment.message_key)
                                .where(ConversationSentiment.conversation_id == conversation_id)))
    added = 0
    for turn in turns:
        if turn.message_key in known:
            continue
        known.add(turn.message_key)
        session.add(ConversationSentiment(
            conversation_id=conversation_id, message_key=turn.message_key[:64], turn=turn.turn, label=turn.label,
            confidence=turn.confidence, negative=turn.scores.get("negative", 0.0),
            neutral=turn.scores.get("neutral", 0.0), positive=turn.scores.get("positive", 0.0),
            intent=(turn.intent or None) and turn.intent[:100]))
        added += 1
    session.flush()
    return added


def parse_rating(answer: str) -> Optional[int]:
    """1-5 from "4", "4/5", "5 out of 5" or "five"; None when the answer has no such number."""
    match = RATING.search(answer or "")
    if not match:
        return None
    return int(match.group(1)) if match.group(1) else RATING_WORDS[match.group(2).lower()]


def save_satisfaction(session: Session, conversation_id: str, answer: str,
                      answer_sentiment: Optional[str]) -> SatisfactionFeedback:
    feedback = SatisfactionFeedback(conversation_id=conversation_id[:255], rating=parse_rating(answer),
                                    answer=" ".join((answer or "").split())[:2000], answer_sentiment=answer_sentiment)
    session.add(feedback)
    session.flush()
    return feedback
