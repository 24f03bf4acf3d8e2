"""Conversations survive a crash: Rasa killed with SIGKILL halfway through a form and started again goes on where
the customer was, with the tracker store endpoints.yml configures (on SQLite, and on PostgreSQL); an action server
that dies mid-conversation costs the customer one apology, not an error or silence."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from actions.messages import render
from shop.db import make_engine
from shop.servers import start_servers
from shop.settings import PROJECT_ROOT
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.e2e


def tracker_store_url(store: str, work: Path) -> str:
    if store == "sqlite":
        return f"sqlite:///{work / 'tracker.db'}"
    try:
        create_engine(POSTGRES_URL, future=True).connect().close()
    except OperationalError as exc:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (REQUIRE_POSTGRES=1) but unreachable at {POSTGRES_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    return POSTGRES_URL


def test_the_default_endpoints_keep_conversations_in_a_database():
    store = yaml.safe_load((PROJECT_ROOT / "endpoints.yml").read_text())["tracker_store"]
    assert store == {"type": "shop.tracker_store.StrictSQLTrackerStore", "url": "${TRACKER_STORE_URL}"}
    env_sh = (PROJECT_ROOT / "scripts" / "env.sh").read_text()
    assert "TRACKER_STORE_URL=${TRACKER_STORE_URL:-sqlite:///$PROJECT_ROOT/var/tracker.db}" in env_sh


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_form_goes_on_after_rasa_is_killed_and_started_again(tmp_path, trained_model, store):
    url = tracker_store_url(store, tmp_path)
    database_url = f"sqlite:///{tmp_path / 'shop.db'}"
    make_engine(database_url, seed_demo=True).dispose()
    servers = start_servers(tmp_path, database_url, trained_model, tracker_store_url=url)
    sender = f"durable-{store}-{uuid.uuid4().hex[:8]}"
    try:
        servers.send(sender, "where is my order?")
        asked = " ".join(reply.get("text", "") for reply in servers.send(sender, "10002"))
        assert "email" in asked
        servers.kill_and_restart("rasa")
        reply = " ".join(reply.get("text", "") for reply in servers.send(sender, "alice@example.com"))
        assert "Order 10002 is shipped" in reply  # the form remembered the number and what it had asked
    finally:
        servers.stop()
    with create_engine(url, future=True).connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM events WHERE sender_id = :s AND type_name = 'user'"),
                                    {"s": sender}).scalar_one()
    assert stored == 3  # every customer message is in the tracker store, none lost in the crash


def test_an_action_server_killed_mid_conversation_costs_one_apology_then_the_form_goes_on(servers):
    sender = f"actions-down-{uuid.uuid4().hex[:8]}"
    servers.send(sender, "where is my order?")
    assert "email" in servers.say(sender, "10002")
    servers.running.kill("actions")
    try:
        replies = servers.send(sender, "alice@example.com")  # a 2xx: send() raises on anything else
        assert render("technical_problem") in [reply.get("text") for reply in replies]
    finally:
        servers.running.restart("actions")
    assert "Order 10002 is shipped" in servers.say(sender, "alice@example.com")
