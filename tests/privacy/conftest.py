"""The `world` fixture: see tests/privacy/world.py."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from rasa.core.tracker_store import SQLTrackerStore
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from shop.event_consumer import metadata as events_metadata
from tests.conftest import POSTGRES_URL
from tests.privacy.world import World, ago, fill_events, fill_shop, fill_tracker, sqlite_engine


@pytest.fixture
def world(shop_engine: Engine, tmp_path: Path, monkeypatch) -> Iterator[World]:
    """Shop (seeded demo shop plus Alice's and Bob's rows), tracker store and event stream, all recent."""
    backend = shop_engine.dialect.name
    fill_shop(shop_engine)
    recent = ago(1)
    if backend == "sqlite":
        tracker_store = SQLTrackerStore(dialect="sqlite", db=str(tmp_path / "tracker.db"))
        events_engine = sqlite_engine(tmp_path / "events.db")
    else:
        with shop_engine.connect() as connection:
            schema = connection.execute(text("select current_schema()")).scalar_one()
        monkeypatch.setenv("POSTGRESQL_SCHEMA", schema)  # Rasa's own way to put its tables in a schema
        tracker_store = SQLTrackerStore(host=POSTGRES_URL)
        events_engine = shop_engine
    events_metadata.create_all(events_engine)
    fill_tracker(tracker_store, recent)
    fill_events(events_engine, recent)
    assert inspect(tracker_store.engine).has_table("events")
    urls = {}
    if backend == "sqlite":
        urls = {"--database-url": str(shop_engine.url), "--tracker-store-url": str(tracker_store.engine.url),
                "--events-database-url": str(events_engine.url)}
    yield World(shop_engine, tracker_store, events_engine, backend, urls)
    tracker_store.engine.dispose()
    if events_engine is not shop_engine:
        events_engine.dispose()
