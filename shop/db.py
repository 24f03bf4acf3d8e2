"""One engine per process, and a session scope that commits or rolls back as a unit."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from functools import cache
from typing import Iterator

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from shop.models import Base, Order
from shop.settings import get_settings

logger = logging.getLogger(__name__)


@event.listens_for(Session, "before_flush")
def _drop_nul_characters(session: Session, _context, _instances) -> None:
    """Customers' text (a return reason, a transcript) may carry NUL characters, which PostgreSQL cannot store
    (psycopg2 raises ValueError): they are dropped, so the row is stored with the rest of the text."""
    for instance in [*session.new, *session.dirty]:
        for attribute in inspect(instance).mapper.column_attrs:
            value = getattr(instance, attribute.key, None)
            if isinstance(value, str) and "\x00" in value:
                setattr(instance, attribute.key, value.replace("\x00", ""))


def make_engine(url: str, seed_demo: bool = False) -> Engine:
    """Create the engine, the tables if missing, and the demo shop if asked and the shop is empty."""
    engine = create_engine(url, future=True, pool_pre_ping=True)
    Base.metadata.create_all(engine)
    if seed_demo:
        with Session(engine, future=True) as session:
            if session.query(Order).first() is None:
                from shop.seed import seed_demo_shop

                seed_demo_shop(session)
                session.commit()
                logger.info("Seeded the demo shop into %s", engine.url.render_as_string(hide_password=True))
    return engine


@cache
def get_engine() -> Engine:
    settings = get_settings()
    return make_engine(settings.database_url, seed_demo=settings.seed_demo_data)


@cache
def _session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, future=True, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A transaction: commit on success, roll back on any error, always close."""
    session = _session_factory(engine or get_engine())()
    try:
        yield session
        session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()

