"""Shared fixtures: a fresh, seeded shop database on SQLite and on PostgreSQL.

PostgreSQL comes from TEST_POSTGRES_URL (default: the local server, trust auth, database `test`).
When it cannot be reached the PostgreSQL variants are skipped with the reason shown in pytest's
summary (`-rs`), unless REQUIRE_POSTGRES=1 (CI) turns that into a failure.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from shop.models import Base
from shop.seed import seed_demo_shop
from shop.servers import DEFAULT_MODEL
from shop.settings import get_settings

# The action server loads the generator's model in the background when actions/generate.py is imported; in tests
# that import comes from collecting test modules, so only tests that want the model load it.
os.environ.setdefault("GENERATOR_PRELOAD", "0")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
NOW = datetime.utcnow().replace(microsecond=0)


def _postgres_schema_engine() -> Iterator[Engine]:
    """An engine whose tables live in a throw-away schema, so parallel runs never collide."""
    try:
        admin = create_engine(POSTGRES_URL, future=True)
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any connection problem means "no PostgreSQL here"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (REQUIRE_POSTGRES=1) but unreachable at {POSTGRES_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc.__class__.__name__}")
    schema = f"shoptest_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f"create schema {schema}"))
    engine = create_engine(
        POSTGRES_URL, future=True, connect_args={"options": f"-csearch_path={schema}"}
    )
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"drop schema {schema} cascade"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request, tmp_path) -> Iterator[Engine]:
    """An engine with the shop's tables and no rows, on each supported database."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'shop.db'}", future=True)
        Base.metadata.create_all(engine)
        yield engine
        engine.dispose()
    else:
        for engine in _postgres_schema_engine():
            Base.metadata.create_all(engine)
            yield engine


@pytest.fixture
def shop_engine(empty_engine) -> Engine:
    """The demo shop, seeded relative to NOW."""
    from sqlalchemy.orm import Session

    with Session(empty_engine, future=True) as session:
        seed_demo_shop(session, now=NOW)
        session.commit()
    return empty_engine


@pytest.fixture
def settings():
    return get_settings()



@pytest.fixture
def db(shop_engine, monkeypatch) -> Engine:
    """The seeded test database, as the action server's database (actions reach it through shop.db)."""
    monkeypatch.setattr("shop.db.get_engine", lambda: shop_engine)
    return shop_engine


@pytest.fixture(scope="session")
def trained_model() -> Path:
    """models/shop.tar.gz (or SHOP_MODEL). Without it: skip with the reason, or fail when REQUIRE_MODEL=1 (the test
    command sets it after training)."""
    model = Path(os.environ.get("SHOP_MODEL", DEFAULT_MODEL))
    if not model.exists():
        reason = f"no trained model at {model}: run scripts/train.sh"
        if os.environ.get("REQUIRE_MODEL") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return model


RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_service(name: str, reachable: bool, address: str) -> None:
    """Skip a test whose service is not running here, or fail when REQUIRE_SERVICES=1 (CI starts them)."""
    if reachable:
        return
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{name} required (REQUIRE_SERVICES=1) but unreachable at {address}")
    pytest.skip(f"{name} not reachable at {address}")


def _port_open(url: str, default_port: int) -> bool:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or default_port), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def rabbitmq_url() -> str:
    require_service("RabbitMQ", _port_open(RABBITMQ_URL, 5672), RABBITMQ_URL)
    return RABBITMQ_URL
