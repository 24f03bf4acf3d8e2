"""Conversations read back from Rasa's SQL tracker store (the `events` table, SQLite or PostgreSQL), in the shape
the report and the inbox need: each customer message with what NLU made of it, what the bot did and said after it,
and how long that took.

Only the columns Rasa indexes and the JSON of user, bot and slot events are read, streamed in order, so 10,000
conversations fit in memory and in well under a minute. A row whose JSON is broken is skipped and counted
(`ReadResult.skipped_rows`), never fatal: one corrupt row must not hide a week of conversations.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

LISTEN = "action_listen"
INTERNAL_ACTIONS = {LISTEN, "action_session_start", "action_extract_slots", "action_default_fallback"}


@dataclass
class BotMessage:
    text: str
    name: Optional[str]  # the catalogue message (actions/responses.yml) or the domain response (utter_*) it was
    clarification: bool = False  # a "Did you mean ...?"
    generated: Optional[str] = None  # for knowledge answers: where the text came from (generated / passage)


@dataclass
class Turn:
    """One customer message and everything up to the bot listening again."""

    text: str
    timestamp: float
    intent: Optional[str]
    confidence: Optional[float]
    ranking: List[Tuple[str, float]] = field(default_factory=list)
    sentiment: Optional[str] = None
    frustrated: Optional[bool] = None
    actions: List[str] = field(default_factory=list)
    bot: List[BotMessage] = field(default_factory=list)
    answered_at: Optional[float] = None
    slots: List[Tuple[str, Any]] = field(default_factory=list)  # (name, value) of each slot set in this turn, in order

    @property
    def latency_s(self) -> Optional[float]:
        return None if self.answered_at is None else max(0.0, self.answered_at - self.timestamp)

    def said(self, *names: str) -> bool:
        return any(message.name in names for message in self.bot)


@dataclass
class Conversation:
    sender_id: str
    started_at: float
    ended_at: float
    turns: List[Turn] = field(default_factory=list)
    slots: Dict[str, Any] = field(default_factory=dict)  # every value each slot was set to, in order
    forms: List[str] = field(default_factory=list)  # forms started, in order
    events: int = 0

    def slot_values(self, name: str) -> List[Any]:
        return self.slots.get(name, [])

    def ran(self, *actions: str) -> bool:
        return any(action in actions for turn in self.turns for action in turn.actions)

    def said(self, *names: str) -> bool:
        return any(turn.said(*names) for turn in self.turns)


@dataclass
class ReadResult:
    conversations: List[Conversation]
    skipped_rows: int = 0
    table_found: bool = True


def engine_for(url_or_engine: Any) -> Engine:
    return url_or_engine if isinstance(url_or_engine, Engine) else create_engine(url_or_engine, future=True)


def read_conversations(url_or_engine: Any, since: Optional[float] = None, until: Optional[float] = None,
                       ) -> ReadResult:
    """Every conversation with events in [since, until) (Unix seconds; None: unbounded), oldest event first."""
    engine = engine_for(url_or_engine)
    if not inspect(engine).has_table("events"):
        return ReadResult([], table_found=False)
    conditions, params = [], {}
    if since is not None:
        conditions.append("timestamp >= :since")
        params["since"] = since
    if until is not None:
        conditions.append("timestamp < :until")
        params["until"] = until
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    query = text(f"SELECT sender_id, type_name, timestamp, action_name, data FROM events {where} "
                 f"ORDER BY sender_id, id")
    conversations: List[Conversation] = []
    skipped = 0
    with engine.connect().execution_options(stream_results=True) as connection:
        current: Optional[_Builder] = None
        for row in connection.execute(query, params):
            timestamp = _float(row.timestamp)
            if timestamp is None or timestamp != timestamp:  # SQLite keeps whatever it is given, text or NULL too
                skipped += 1
                logger.warning(f"Skipped an event row of conversation {row.sender_id} without a valid timestamp")
                continue
            if current is None or row.sender_id != current.conversation.sender_id:
                if current is not None:
                    conversations.append(current.finish())
                current = _Builder(row.sender_id, timestamp)
            try:
                current.add(row.type_name, timestamp, row.action_name, row.data)
            except (ValueError, TypeError, AttributeError) as exc:
                skipped += 1
                logger.warning(f"Skipped a broken event row of conversation {row.sender_id}: {exc}")
        if current is not None:
            conversations.append(current.finish())
    return ReadResult(conversations, skipped)


class _Builder:
    def __init__(self, sender_id: str, first_timestamp: float) -> None:
        self.conversation = Conversation(sender_id, first_timestamp, first_timestamp)
        self.turn: Optional[Turn] = None

    def add(self, type_name: str, timestamp: float, action_name: Optional[str], raw: Optional[str]) -> None:
        conversation = self.conversation
        conversation.events += 1
        conversation.ended_at = max(conversation.ended_at, timestamp)
        if type_name == "user":
            data = _json(raw)
            parse = data.get("parse_data") or {}
            intent = parse.get("intent") or {}
            self.turn = Turn(
                text=str(data.get("text") or ""), timestamp=timestamp, intent=intent.get("name"),
                confidence=_float(intent.get("confidence")),
                ranking=[(entry.get("name"), _float(entry.get("confidence")) or 0.0)
                         for entry in parse.get("intent_ranking") or [] if isinstance(entry, dict)],
                sentiment=(parse.get("sentiment") or {}).get("label"),
                frustrated=(parse.get("frustration") or {}).get("frustrated"),
            )
            conversation.turns.append(self.turn)
        elif type_name == "action" and self.turn is not None:
            if action_name == LISTEN:
                self.turn = None
            elif action_name and action_name not in INTERNAL_ACTIONS:
                self.turn.actions.append(action_name)
                self.turn.answered_at = timestamp
        elif type_name == "bot" and self.turn is not None:
            data = _json(raw)
            metadata = data.get("metadata") or {}
            generator = metadata.get("generator") or {}
            self.turn.bot.append(BotMessage(
                text=str(data.get("text") or ""), name=metadata.get("message_name") or metadata.get("utter_action"),
                clarification=bool(metadata.get("clarification")), generated=generator.get("source")))
            self.turn.answered_at = timestamp
        elif type_name == "slot":
            data = _json(raw)
            conversation.slots.setdefault(str(data.get("name")), []).append(data.get("value"))
            if self.turn is not None:
                self.turn.slots.append((str(data.get("name")), data.get("value")))
        elif type_name == "active_loop":
            name = _json(raw).get("name")
            if name:
                conversation.forms.append(name)

    def finish(self) -> Conversation:
        return self.conversation


def _json(raw: Optional[str]) -> Dict[str, Any]:
    data = json.loads(raw or "{}")
    if not isinstance(data, dict):
        raise ValueError("event data is not a JSON object")
    return data


def _float(value: Any) -> Optional[float]:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def iter_user_messages(conversations: List[Conversation]) -> Iterator[Tuple[Conversation, int, Turn]]:
    for conversation in conversations:
        for index, turn in enumerate(conversation.turns):
            yield conversation, index, turn
