"""Skill: free-form questions, answered by the generator (generator/) from the knowledge base, checked first.

Thin on purpose: it turns the tracker into a ReplyRequest (the message, recent turns, and the verified order's
facts only when this conversation verified the order) and says what the service returns. The service is loaded
once per action-server process, in the background at start (generator.yml `preload`).
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from contextvars import ContextVar
from datetime import date
from typing import Any, Dict, List, Optional, Tuple

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from actions.base import ShopAction, is_verified, verified_order
from actions.messages import MESSAGE_NAME, say
from generator.config import get_config
from generator.prompt import ASSISTANT, CUSTOMER
from generator.service import Reply, ReplyRequest, get_service
from shop.db import session_scope
from shop.orders import TODAY, keyed_order_facts, order_fact_questions

logger = logging.getLogger(__name__)

KNOWLEDGE_ANSWER = "knowledge_answer"  # bot message metadata: this message answered from the knowledge base
_REPLY: ContextVar[Optional[Reply]] = ContextVar("knowledge_reply", default=None)


def conversation_history(tracker: Tracker, limit: int) -> List[Tuple[str, str]]:
    """The last `limit` customer and assistant messages before the latest customer message, oldest first."""
    messages = [(CUSTOMER if event["event"] == "user" else ASSISTANT, event.get("text") or "")
                for event in tracker.events if event.get("event") in ("user", "bot") and event.get("text")]
    last_customer = max((i for i, (role, _) in enumerate(messages) if role == CUSTOMER), default=len(messages))
    return messages[:last_customer][-limit:] if limit > 0 else []


def verified_facts(tracker: Tracker, today: date) -> List[Tuple[str, str]]:
    """What the model may say about the customer's order, as (kind, sentence): only the order verified in this
    conversation, re-checked against the database; nothing at all otherwise."""
    if not is_verified(tracker):
        return []
    try:
        with session_scope() as session:
            order = verified_order(session, tracker)
            if order is None:
                return []
            return keyed_order_facts(order, today)
    except SQLAlchemyError:
        logger.exception("generator: could not read the verified order")
        return []


async def knowledge_reply(tracker: Tracker, min_score: Optional[float] = None) -> Reply:
    """The service's reply to the latest message; the database is read off the event loop."""
    text = (tracker.latest_message or {}).get("text") or ""
    facts = await asyncio.to_thread(verified_facts, tracker, date.today())
    questions = order_fact_questions()
    request = ReplyRequest(text, conversation_history(tracker, get_config().history_turns),
                           [fact for kind, fact in facts if kind != TODAY], min_score,
                           standing_facts=[fact for kind, fact in facts if kind == TODAY],
                           fact_questions={fact: questions.get(kind, ()) for kind, fact in facts})
    return await get_service().reply(request)


def utter_reply(dispatcher: CollectingDispatcher, reply: Reply) -> None:
    """Send a grounded reply; the metadata (kept in the tracker, not shown) says where it came from."""
    dispatcher.utter_message(text=reply.text, **{
        KNOWLEDGE_ANSWER: True, MESSAGE_NAME: "knowledge_answer",
        "generator": {"source": reply.source, "passage": reply.passage_id, "score": reply.score,
                      "rejected": list(reply.rejected)},
    })


def answered_from_knowledge(event: Dict[str, Any]) -> bool:
    return bool((event.get("metadata") or {}).get(KNOWLEDGE_ANSWER))


class KnowledgeAction(ShopAction, ABC):
    """A ShopAction whose answer may come from the knowledge base. The reply is awaited first (generation takes
    a while and must not block the event loop); then ShopAction's usual synchronous run, with its error and
    sentiment handling, calls act(), which finds the reply in `self.reply()`."""

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[str, Any]) -> List[EventType]:
        try:
            reply = await self.knowledge(tracker)
        except Exception:  # noqa: BLE001 - a broken knowledge base must not leave the customer unanswered
            logger.exception("generator: no reply in %s", self.name())
            reply = None
        token = _REPLY.set(reply)  # a context variable: concurrent requests each see their own reply
        try:
            return super().run(dispatcher, tracker, domain)
        finally:
            _REPLY.reset(token)

    @abstractmethod
    async def knowledge(self, tracker: Tracker) -> Optional[Reply]:
        """The knowledge base's reply for this turn, or None when this turn does not ask it."""

    @staticmethod
    def reply() -> Optional[Reply]:
        return _REPLY.get()


class ActionGenerateReply(KnowledgeAction):
    """A free-form shop question: a grounded reply, or, when the knowledge base has nothing, the offer of a
    person (inside a form only the hint, so the form's next question still means what it says)."""

    def name(self) -> str:
        return "action_generate_reply"

    async def knowledge(self, tracker: Tracker) -> Optional[Reply]:
        return await knowledge_reply(tracker)

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        reply = self.reply()
        if reply is not None and reply.grounded:
            utter_reply(dispatcher, reply)
            return []
        if tracker.active_loop.get("name"):
            say(dispatcher, "no_knowledge_in_form")
            return []
        say(dispatcher, "no_knowledge")
        return [SlotSet("pending_offer", "handoff"),
                SlotSet("handoff_reason", "a question the assistant could not answer")]


# The action server imports this module at start: load the knowledge base and the model now, in the background,
# so the first question does not wait for them (tests switch this off with GENERATOR_PRELOAD=0).
if get_config().preload:
    get_service().preload()
