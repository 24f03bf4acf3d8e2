"""The databases that hold customers' personal data, opened so that looking at them changes nothing.

Why not `shop.db.make_engine`: it creates missing tables (and may seed the demo shop), and a dry run or an export
must not change anything. Here an engine is only connected and tested; tables are reflected when they exist and
skipped when they do not (a tracker store that never saw a conversation, an events database of a shop without a
broker). Where the URLs come from is the same as everywhere else in the project: DATABASE_URL / shop.yml for the shop
(shop/settings.py), TRACKER_STORE_URL for Rasa's conversations (endpoints.yml, scripts/env.sh) and
EVENTS_DATABASE_URL for the event consumer's stream (shop/event_consumer.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, TypeVar

from sqlalchemy import MetaData, Table, create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from shop.settings import PROJECT_ROOT, get_settings

TRACKER_EVENTS = "events"  # Rasa's SQLTrackerStore table
STREAM_EVENTS = "conversation_events"  # shop/event_consumer.py
LIMIT_EVENTS = "limit_events"  # shop/limits.py: hashed conversation ids and client addresses

T = TypeVar("T")


class DatabaseError(Exception):
    """A database could not be opened or used; the message says which one, where, and why (no password)."""


def chunks(items: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    """Slices short enough for an SQL `IN (...)` on every database."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def safe_url(url: str) -> str:
    """The URL as it may be printed: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def shop_database_url() -> str:
    return get_settings().database_url


def tracker_store_url() -> str:
    """As endpoints.yml and scripts/env.sh: TRACKER_STORE_URL, else var/tracker.db."""
    return os.environ.get("TRACKER_STORE_URL") or f"sqlite:///{PROJECT_ROOT / 'var' / 'tracker.db'}"


def events_database_url() -> str:
    """As the event consumer: EVENTS_DATABASE_URL, else var/events.db."""
    from shop.event_consumer import default_database_url

    return default_database_url()


@dataclass
class Database:
    """One opened database: what it is called in messages, the setting its URL came from, and its tables."""

    label: str
    setting: str
    url: str
    engine: Engine
    _tables: Dict[str, Optional[Table]] = field(default_factory=dict)

    def table(self, name: str) -> Optional[Table]:
        """The table as it exists in this database, or None when it does not exist (yet)."""
        if name not in self._tables:
            try:
                exists = inspect(self.engine).has_table(name)
                self._tables[name] = Table(name, MetaData(), autoload_with=self.engine) if exists else None
            except SQLAlchemyError as error:
                raise DatabaseError(f"cannot read the tables of the {self.label} at {safe_url(self.url)}: "
                                    f"{first_line(error)}") from error
        return self._tables[name]

    def has_table(self, name: str) -> bool:
        return self.table(name) is not None

    def dispose(self) -> None:
        self.engine.dispose()


@dataclass
class Databases:
    """The shop's database and, where they exist, the tracker store and the event stream."""

    shop: Database
    tracker: Optional[Database]
    events: Optional[Database]
    notes: List[str] = field(default_factory=list)  # why a database was skipped

    def opened(self) -> Iterable[Database]:
        return [database for database in (self.shop, self.tracker, self.events) if database is not None]

    def dispose(self) -> None:
        for database in self.opened():
            database.dispose()


def first_line(error: BaseException) -> str:
    """The driver's reason without SQLAlchemy's background links and the statement."""
    message = str(getattr(error, "orig", None) or error).strip().splitlines()
    return message[0] if message else error.__class__.__name__


def open_database(label: str, setting: str, url: str, required: bool,
                  schema: Optional[str] = None) -> Optional[Database]:
    """Connect and test. A SQLite file that does not exist is an error when `required`, else None (nothing was ever
    stored there). `schema`: a PostgreSQL schema to look in first. Raises DatabaseError for a malformed URL, an
    unknown driver or an unreachable server."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise DatabaseError(f"{setting} is not a database URL: {safe_url(url)!r} (expected e.g. "
                            f"sqlite:///var/shop.db or postgresql://user@host:5432/shop)") from error
    connect_args: Dict[str, object] = {}
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if path and path != ":memory:" and not path.startswith("file:") and not Path(path).is_file():
            if required:
                raise DatabaseError(f"no {label} at {path} ({setting}={safe_url(url)}): check the path")
            return None
    elif parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() == "psycopg2":
            connect_args["connect_timeout"] = 10  # a cron job must not hang on a server that does not answer
        if schema:
            connect_args["options"] = f"-csearch_path={schema}"
    try:
        engine = create_engine(parsed, future=True, connect_args=connect_args)
    except (ArgumentError, ImportError, SQLAlchemyError) as error:
        raise DatabaseError(f"cannot use {setting}={safe_url(url)}: {first_line(error)}") from error
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except SQLAlchemyError as error:
        engine.dispose()
        raise DatabaseError(f"cannot reach the {label} at {safe_url(url)} ({setting}): {first_line(error)}") from error
    return Database(label, setting, url, engine)


def open_databases(shop_url: Optional[str] = None, tracker_url: Optional[str] = None,
                   events_url: Optional[str] = None) -> Databases:
    """The three databases, from the arguments or else the project's settings. The shop's must exist; the tracker
    store and the event stream are skipped (with a note) when their SQLite file does not exist."""
    shop = open_database("shop database", "DATABASE_URL", shop_url or shop_database_url(), required=True)
    assert shop is not None
    databases = Databases(shop=shop, tracker=None, events=None)
    try:
        tracker_url = tracker_url or tracker_store_url()
        # Rasa's SQL tracker store keeps its tables in POSTGRESQL_SCHEMA when that is set
        databases.tracker = open_database("tracker store", "TRACKER_STORE_URL", tracker_url, required=False,
                                          schema=os.environ.get("POSTGRESQL_SCHEMA"))
        if databases.tracker is None:
            databases.notes.append(f"no tracker store at {safe_url(tracker_url)} yet: no conversations to look at")
        events_url = events_url or events_database_url()
        databases.events = open_database("event stream database", "EVENTS_DATABASE_URL", events_url, required=False)
        if databases.events is None:
            databases.notes.append(f"no event stream database at {safe_url(events_url)}: the event consumer has "
                                   "not stored any event")
    except DatabaseError:
        databases.dispose()
        raise
    return databases
