"""Starts the real action server and Rasa server once per test session (shop.servers), on free ports,
with a fresh seeded SQLite database, and talks to them over the REST channel.

Needs the trained model (models/shop.tar.gz, made by scripts/train.sh); without it these tests are
skipped with that reason, or fail when REQUIRE_MODEL=1 (the test command sets it after training).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List

import pytest
import requests
from sqlalchemy import create_engine

from shop.db import make_engine
from shop.servers import RunningServers, start_servers
from tests.e2e.shops import ALNUM, DEMO, ShopProfile, build_alnum_shop


class Conversation:
    """The running servers, the database they use, and helpers to talk to the bot. `profile` tells the shop's
    order numbers (tests/e2e/shops.py): `number("10002")` is that order's number in this shop, `typed("10002")` as
    a customer would type it."""

    def __init__(self, running: RunningServers, database_url: str, profile: ShopProfile = DEMO):
        self.running = running
        self.rasa_url = running.rasa_url
        self.engine = create_engine(database_url, future=True)
        self.profile = profile
        self.number, self.typed = profile.number, profile.typed

    def send(self, sender: str, message: str) -> List[Dict]:
        """The bot's answer to one message; never the same text twice in one answer."""
        replies = self.running.send(sender, message)
        texts = [reply["text"] for reply in replies if reply.get("text")]
        assert len(texts) == len(set(texts)), f"the same text twice in one turn: {texts}"
        return replies

    def parse(self, message: str) -> Dict:
        """What NLU makes of a message (Rasa's /model/parse)."""
        response = requests.post(f"{self.rasa_url}/model/parse", json={"text": message}, timeout=60)
        response.raise_for_status()
        return response.json()

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


@pytest.fixture(scope="session", params=[DEMO.name, ALNUM.name])
def shop(request, tmp_path_factory, trained_model: Path) -> Iterator[Conversation]:
    """The same conversations against two shops: the demo shop, and one with alphanumeric order numbers whose
    orders came in through the CSV importer."""
    if request.param == DEMO.name:
        yield request.getfixturevalue("servers")
        return
    work = tmp_path_factory.mktemp("alnum-shop")
    env = build_alnum_shop(work)
    running = start_servers(work, env["DATABASE_URL"], trained_model, extra_env=env)
    try:
        conversation = Conversation(running, env["DATABASE_URL"], ALNUM)
        conversation.send("warm-up", "hi")
        yield conversation
    finally:
        running.stop()
