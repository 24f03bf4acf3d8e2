"""One customer (alice@example.com) spread over every store that holds personal data, a second one (bob) and a
stranger with a look-alike address who must be left alone; on SQLite and on PostgreSQL.

The tracker store is Rasa's own SQLTrackerStore saving DialogueStateTrackers; the event stream is filled by the
event consumer's own `row_for`/`store` (which mask emails, as in production), plus one row stored unmasked as an
older consumer would have.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Tuple

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.slots import AnySlot
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import MetaData, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shop.event_consumer import row_for, store
from shop.models import (
    ConversationSentiment,
    Customer,
    HandoffTicket,
    Order,
    OrderLine,
    OutboxEmail,
    Return,
    SatisfactionFeedback,
)
from shop.privacy.stores import Database, Databases
from shop.returns import create_return
from shop.settings import get_settings
from tests.conftest import NOW

ALICE, BOB = "alice@example.com", "bob@example.com"
ALICE_CONVERSATIONS = {"alice-email", "alice-order-only", "ALICE@Example.com", "alice-stream-only",
                       "alice-ticket-only"}
OTHER_CONVERSATIONS = {"bob-1", "lookalike"}
ALICE_REASON = "the handle came off, call me on 0151 23456789"
SLOTS = [AnySlot(name, mappings=[]) for name in ("order_id", "order_email", "verified_order_id", "verified_email")]


def ago(days: float) -> float:
    return time.time() - days * 86400


def conversation(sender_id: str, turns: List[Tuple[str, str, Dict[str, Any]]], start: float) -> DialogueStateTracker:
    """A tracker as Rasa builds it: session start, then per turn the message, the slots it set, the reply."""
    events: List[Event] = [ActionExecuted(ACTION_SESSION_START_NAME, timestamp=start),
                           SessionStarted(timestamp=start), ActionExecuted(ACTION_LISTEN_NAME, timestamp=start)]
    moment = start
    for said, reply, slots in turns:
        moment += 5
        events.append(UserUttered(said, intent={"name": "inform", "confidence": 0.9},
                                  parse_data={"intent": {"name": "inform", "confidence": 0.9}, "text": said,
                                              "entities": []}, timestamp=moment))
        events += [SlotSet(name, value, timestamp=moment) for name, value in slots.items()]
        events += [BotUttered(reply, timestamp=moment + 1), ActionExecuted(ACTION_LISTEN_NAME, timestamp=moment + 1)]
    return DialogueStateTracker.from_events(sender_id, events, slots=SLOTS)


def trackers(recent: float) -> List[DialogueStateTracker]:
    return [
        conversation("alice-email", [
            ("hi, my email is Alice@Example.COM and it's about order 10001", "Thanks, checking.",
             {"order_id": "10001", "order_email": ALICE, "verified_order_id": "10001", "verified_email": ALICE}),
            ("I want to return the mug", "Return R-9 is registered.", {}),
        ], recent),
        # verified an order of Alice's; her address never appears in it
        conversation("alice-order-only", [
            ("where is 10002", "What is the email on the order?", {"order_id": "10002"}),
            ("the usual one", "Order 10002 is on its way.", {"verified_order_id": "10002"}),
        ], recent),
        # a channel that uses the email as conversation id (the event stream stores it under a pseudonym)
        conversation("ALICE@Example.com", [("hello", "Hi! How can I help?", {}),
                                           ("10019", "Order 10019 was delivered.", {"verified_order_id": "10019"})],
                     recent),
        conversation("bob-1", [
            ("order 10003, bob@example.com", "Order 10003 is pending.",
             {"order_id": "10003", "order_email": BOB, "verified_order_id": "10003"}),
        ], recent),
        # not Alice: addresses that contain hers, and her order number tried without success
        conversation("lookalike", [
            ("I'm jimalice@example.com, or alice@example.com.au; order 10001?", "That doesn't match.",
             {"order_id": "10001", "order_email": "jimalice@example.com"}),
        ], recent),
    ]


@dataclass
class World:
    shop: Engine
    tracker_store: SQLTrackerStore
    events: Engine
    backend: str
    urls: Dict[str, str] = field(default_factory=dict)  # SQLite only: for the command line

    @property
    def tracker(self) -> Engine:
        return self.tracker_store.engine

    def save(self, tracker: DialogueStateTracker) -> None:
        asyncio.run(self.tracker_store.save(tracker))

    def databases(self) -> Databases:
        return Databases(shop=Database("shop database", "DATABASE_URL", str(self.shop.url), self.shop),
                         tracker=Database("tracker store", "TRACKER_STORE_URL", str(self.tracker.url), self.tracker),
                         events=Database("event stream database", "EVENTS_DATABASE_URL", str(self.events.url),
                                         self.events))

    def senders(self, table: str) -> List[str]:
        engine = self.tracker if table == "events" else self.events
        with engine.connect() as connection:
            return sorted(set(connection.execute(text(f"select sender_id from {table}")).scalars()))

    def snapshot(self) -> Dict[str, List[tuple]]:
        """Every row of every table of the three databases: a dry run must leave it exactly as it was."""
        rows: Dict[str, List[tuple]] = {}
        for name, engine in (("shop", self.shop), ("tracker", self.tracker), ("events", self.events)):
            meta = MetaData()
            meta.reflect(engine)
            with engine.connect() as connection:
                for table in meta.sorted_tables:
                    rows[f"{name}.{table.name}"] = sorted(map(tuple, connection.execute(select(table))), key=repr)
        return rows


def fill_shop(engine: Engine) -> None:
    settings = get_settings()
    with Session(engine, future=True) as session:
        alice_line = session.get(Order, "10001").lines[0]
        create_return(session, alice_line, ALICE_REASON, "store_credit", settings.returns, now=NOW)
        bob_line = session.get(Order, "10004").lines[0]
        session.add(Return(line=bob_line, reason="my own words, bob", refund_method="store_credit"))
        session.add(OutboxEmail(to_address=BOB, subject="Your return", body="Hello Bob Chen"))
        session.add_all([
            HandoffTicket(conversation_id="alice-email", reason="asked for a person",
                          transcript="customer: my email is alice@example.com\nbot: A person will reply."),
            HandoffTicket(conversation_id="alice-ticket-only", reason="complaint",
                          transcript="customer: this is ALICE@example.com, furious!"),
            HandoffTicket(conversation_id="bob-1", reason="asked for a person", transcript="customer: bob here"),
            HandoffTicket(conversation_id="lookalike", reason="asked for a person",
                          transcript="customer: jimalice@example.com"),
            SatisfactionFeedback(conversation_id="alice-order-only", rating=5, answer="5, great"),
            SatisfactionFeedback(conversation_id="bob-1", rating=4, answer="4"),
        ])
        for conversation_id, key in (("alice-email", "m1"), ("alice-email", "m2"), ("alice-ticket-only", "m1"),
                                     ("bob-1", "m1")):
            session.add(ConversationSentiment(conversation_id=conversation_id, message_key=key, turn=1,
                                              label="neutral", confidence=0.9, negative=0.05, neutral=0.9,
                                              positive=0.05, intent="inform"))
        session.commit()


def fill_tracker(tracker_store: SQLTrackerStore, recent: float) -> None:
    for tracker in trackers(recent):
        asyncio.run(tracker_store.save(tracker))


def fill_events(engine: Engine, recent: float) -> None:
    """The stream as the consumer stores it: masked (an email as conversation id becomes a pseudonym); and one
    conversation stored unmasked (an older consumer)."""
    rows = []
    for tracker in trackers(recent):
        if tracker.sender_id in ("alice-email", "alice-order-only", "ALICE@Example.com", "bob-1"):
            for number, event in enumerate(tracker.events):
                payload = {**event.as_dict(), "sender_id": tracker.sender_id}
                rows.append(row_for(f"{tracker.sender_id}-{number}", json.dumps(payload).encode()))
    rows.append({"message_id": "stream-only-1", "sender_id": "alice-stream-only", "type_name": "user",
                 "timestamp": recent, "received_at": recent,
                 "data": json.dumps({"event": "user", "text": "I am Alice@example.com", "timestamp": recent})})
    store(engine, rows)


def sqlite_engine(path: Path) -> Engine:
    from sqlalchemy import create_engine

    return create_engine(f"sqlite:///{path}", future=True)


def alice(session: Session) -> Customer:
    return session.get(Order, "10001").customer


def count(engine: Engine, model, *conditions) -> int:
    from sqlalchemy import func

    with Session(engine, future=True) as session:
        return int(session.execute(select(func.count()).select_from(model).where(*conditions)).scalar_one())


def order_lines_of(engine: Engine, customer_id: int) -> List[int]:
    with Session(engine, future=True) as session:
        return list(session.scalars(select(OrderLine.id).join(Order).where(Order.customer_id == customer_id)))

