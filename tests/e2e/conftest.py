"""Starts the real action server and Rasa server once per test session (shop.servers), on free ports,
with a fresh seeded SQLite database, and talks to them over the REST channel.

Needs the trained model (models/shop.tar.gz, made by scripts/train.sh); without it these tests are
skipped with that reason, or fail when REQUIRE_MODEL=1 (the test command sets it after training).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from sqlalchemy import create_engine

from shop.db import make_engine
from shop.servers import RunningServers, start_servers


class Conversation:
    """The running servers, the database they use, and helpers to talk to the bot."""

    def __init__(self, running: RunningServers, database_url: str):
        self.running = running
        self.rasa_url = running.rasa_url
        self.engine = create_engine(database_url, future=True)

    def send(self, sender: str, message: str) -> List[Dict]:
        return self.running.send(sender, message)

    def say(self, sender: str, message: str) -> str:
        """Everything the bot answered to one message, as one string."""
        return "\n".join(reply.get("text", "") for reply in self.send(sender, message))


@pytest.fixture(scope="session")
def servers(tmp_path_factory, trained_model: Path) -> Iterator[Conversation]:
    work = tmp_path_factory.mktemp("servers")
    database_url = f"sqlite:///{work / 'shop.db'}"
    make_engine(database_url, seed_demo=True).dispose()
    # The action server loads the generator's model at start, as in production (tests/conftest.py turns it off).
    running = start_servers(work, database_url, trained_model, extra_env={"GENERATOR_PRELOAD": "1"})
    try:
        conversation = Conversation(running, database_url)
        conversation.send("warm-up", "hi")  # the first turn builds the action client; keep it out of the tests
        yield conversation
    finally:
        running.stop()
