"""Deleting (or anonymising) personal data older than shop.yml `privacy.retention_days` allows.

Safe to run from cron: every step is a plain "older than" condition, so a second run right after the first finds
nothing; each step commits on its own, so a step that fails leaves the others done and the next run finishes it.
Conversations go whole, once their last event is older than the limit: deleting only the old events of a
conversation that is still going on would make Rasa forget its start (slots, the verified order) mid-conversation.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import List, Optional, Sequence

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from shop.db import session_scope
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
from shop.privacy.customer import ERASED, ERASED_DOMAIN, anonymised_email
from shop.privacy.erasure import Change, free_text_reason
from shop.privacy.stores import LIMIT_EVENTS, STREAM_EVENTS, TRACKER_EVENTS, Database, Databases, chunks
from shop.settings import PrivacyPolicy

logger = logging.getLogger("shop.privacy")

DAY_S = 86400.0


def _epoch(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp()


def apply_retention(databases: Databases, policy: PrivacyPolicy, return_reasons: Sequence[str],
                    limit_keep_s: float = DAY_S, now: Optional[datetime] = None,
                    dry_run: bool = False) -> List[Change]:
    """Every step of the retention policy; what was (or, in a dry run, would be) deleted or anonymised.
    `now`: naive UTC, as the shop's tables store time. `limit_keep_s`: how long verification-throttle counters
    (hashed, shop/limits.py) are kept; at least a day."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    changes: List[Change] = []
    days = policy.conversations_days
    if days:
        cutoff = _epoch(now - timedelta(days=days))
        for database, table_name, what in ((databases.tracker, TRACKER_EVENTS, "events in the tracker store"),
                                           (databases.events, STREAM_EVENTS, "events in the event stream")):
            if database is not None:
                changes.append(_old_conversations(database, table_name, what, cutoff, days, dry_run))
    shop = databases.shop
    for model, column, days, what in (
            (HandoffTicket, HandoffTicket.created_at, policy.handoff_tickets_days, "handoff tickets"),
            (SatisfactionFeedback, SatisfactionFeedback.created_at, policy.feedback_days, "satisfaction answers"),
            (ConversationSentiment, ConversationSentiment.recorded_at, policy.feedback_days,
             "message sentiment rows"),
            (OutboxEmail, OutboxEmail.created_at, policy.emails_days, "emails in the outbox")):
        if days and shop.has_table(model.__tablename__):
            changes.append(_old_rows(shop, model, column, now - timedelta(days=days), what, days, dry_run))
    if policy.order_contact_data == "anonymise" and policy.order_contacts_days:
        changes.extend(_old_contacts(shop, now - timedelta(days=policy.order_contacts_days),
                                     policy.order_contacts_days, return_reasons, dry_run))
    limits = shop.table(LIMIT_EVENTS)
    if limits is not None:
        keep_s = max(limit_keep_s, DAY_S)
        condition = limits.c.at < _epoch(now) - keep_s
        with shop.engine.begin() as connection:
            count = _count(connection, limits, condition)
            if count and not dry_run:
                connection.execute(delete(limits).where(condition))
        changes.append(Change("verification throttle counters (hashed)", count, "delete",
                              f"older than {keep_s / DAY_S:g} day(s)"))
    for change in changes:
        if change.count:
            verb = {"delete": "would delete" if dry_run else "deleted",
                    "anonymise": "would anonymise" if dry_run else "anonymised"}[change.action]
            logger.info(f"retention: {change.what}: {verb} {change.count} ({change.detail})")
    if not any(change.count for change in changes):
        logger.info("retention: nothing to do: nothing is older than shop.yml privacy.retention_days allows")
    return changes


def _count(connection: Connection, table, condition: ColumnElement) -> int:
    return int(connection.execute(select(func.count()).select_from(table).where(condition)).scalar_one())


def _old_conversations(database: Database, table_name: str, what: str, cutoff: float, days: int,
                       dry_run: bool) -> Change:
    table = database.table(table_name)
    if table is None:
        return Change(what, 0, "delete", f"no {table_name} table in the {database.label}")
    moment = table.c.timestamp if table_name == TRACKER_EVENTS else func.coalesce(table.c.timestamp,
                                                                                  table.c.received_at)
    with database.engine.connect() as connection:
        senders = list(connection.execute(select(table.c.sender_id).group_by(table.c.sender_id)
                                          .having(func.max(moment) < cutoff)).scalars())
    events = 0
    for batch in chunks(senders):
        # one short transaction per batch: on SQLite a long one would keep the bot from saving conversations
        with database.engine.begin() as connection:
            condition = table.c.sender_id.in_(batch)
            events += _count(connection, table, condition)
            if not dry_run:
                # only if still old: a conversation that went on since the query above stays
                connection.execute(delete(table).where(condition, table.c.sender_id.in_(
                    select(table.c.sender_id).where(condition).group_by(table.c.sender_id)
                    .having(func.max(moment) < cutoff))))
    return Change(what, events, "delete", f"{len(senders)} conversation(s) whose last event is older than "
                                          f"{days} days")


def _old_rows(shop: Database, model, column, cutoff: datetime, what: str, days: int, dry_run: bool) -> Change:
    with session_scope(shop.engine) as session:
        condition = column < cutoff
        count = int(session.execute(select(func.count()).select_from(model).where(condition)).scalar_one())
        if count and not dry_run:
            session.execute(delete(model).where(condition).execution_options(synchronize_session=False))
    return Change(what, count, "delete", f"older than {days} days")


def _old_contacts(shop: Database, cutoff: datetime, days: int, return_reasons: Sequence[str],
                  dry_run: bool) -> List[Change]:
    """Customers whose latest order is older than the cutoff: name and email anonymised, orders kept."""
    if not shop.has_table(Customer.__tablename__):
        return []
    with session_scope(shop.engine) as session:
        latest = (select(Order.customer_id).group_by(Order.customer_id)
                  .having(func.max(Order.ordered_at) < cutoff))
        customers = list(session.scalars(select(Customer.id).where(
            and_(Customer.id.in_(latest), ~Customer.email.like(f"%@{ERASED_DOMAIN}"))).order_by(Customer.id)))
        returns = []
        for batch in chunks(customers):
            rows = session.execute(select(Return.id, Return.reason).join(OrderLine).join(Order)
                                   .where(Order.customer_id.in_(batch)))
            returns.extend(row_id for row_id, reason in rows if free_text_reason(reason, return_reasons))
        if not dry_run:
            for customer_id in customers:
                session.execute(update(Customer).where(Customer.id == customer_id)
                                .values(name=ERASED, email=anonymised_email(customer_id))
                                .execution_options(synchronize_session=False))
            for batch in chunks(returns):
                session.execute(update(Return).where(Return.id.in_(batch)).values(reason=ERASED)
                                .execution_options(synchronize_session=False))
    detail = f"latest order older than {days} days; the orders stay"
    return [Change("customer records", len(customers), "anonymise", f"name, email; {detail}"),
            Change("return reasons in the customers' words", len(returns), "anonymise", detail)]
