"""One set of real servers for the channel tests: the action server, and Rasa with the project's credentials.yml,
its HTTP API protected by an auth token and a JWT secret, CORS open to the web chat's page server, and no Slack
settings (which must leave the REST and socket.io channels working). Slack's own tests start a second set.

Needs the trained model; without it these tests are skipped, or fail when REQUIRE_MODEL=1 (the test command).
"""

from __future__ import annotations

import functools
import secrets
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from shop.db import make_engine
from shop.servers import RunningServers, start_servers
from shop.settings import PROJECT_ROOT

NO_SLACK = {"SLACK_BOT_TOKEN": "", "SLACK_SIGNING_SECRET": "", "SLACK_API_URL": ""}


@dataclass
class ChannelServers:
    running: RunningServers
    engine: Engine  # the database the action server uses
    auth_token: str
    jwt_secret: str
    page_url: str  # webchat/ served from another origin than Rasa, as on a shop's site

    @property
    def rasa_url(self) -> str:
        return self.running.rasa_url


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, fmt: str, *args: object) -> None:
        """Request lines would drown pytest's output."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the test, so that a fixture can tell that its test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="package")
def page_server() -> Iterator[str]:
    """webchat/ over HTTP, the way scripts/web.sh serves it."""
    handler = functools.partial(QuietHandler, directory=str(PROJECT_ROOT / "webchat"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="package")
def servers(tmp_path_factory, trained_model, page_server) -> Iterator[ChannelServers]:
    work = tmp_path_factory.mktemp("channel-servers")
    database_url = f"sqlite:///{work / 'shop.db'}"
    make_engine(database_url, seed_demo=True).dispose()
    auth_token, jwt_secret = secrets.token_hex(16), secrets.token_hex(32)
    running = start_servers(
        work, database_url, trained_model, extra_env=NO_SLACK, auth_token=auth_token,
        extra_args=["--jwt-secret", jwt_secret, "--jwt-method", "HS256", "--cors", page_server],
    )
    engine = create_engine(database_url, future=True)
    try:
        running.send("warm-up", "hi")  # the first turn builds the action client; keep it out of the tests
        yield ChannelServers(running, engine, auth_token, jwt_secret, page_server)
    finally:
        engine.dispose()
        running.stop()
