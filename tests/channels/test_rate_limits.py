"""Rate limits on the channels (channels/ratelimit.py) and the client address each message carries, with the three
channels of credentials.yml mounted on a Sanic app in this process the way `rasa run` mounts them, and a stand-in
for Rasa's agent (no trained model needed): REST answers 429 with Retry-After, socket.io and Slack answer politely,
the address is the balancer's last X-Forwarded-For entry, and Redis shares the count between replicas."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from unittest import mock

import jwt
import pytest
import redis
import requests
import socketio
from rasa.core.channels.channel import UserMessage, register
from sanic import Sanic
from sanic.touchup import TouchUp

from channels.ratelimit import RateLimiter, client_address
from channels.rest import ValidatingRestInput
from channels.slack import EnvSlackInput
from channels.socketio import SessionSocketIOInput
from shop.limits import MemoryLog, RedisLog
from shop.servers import free_port
from shop.settings import RateLimits
from shop.throttle import CLIENT_ADDRESS
from tests.channels.slack_support import SlackWebApi, message_event, sign
from tests.conftest import REDIS_URL, _port_open, require_service

LIMIT = 3
MESSAGE = "Too many messages: please wait {retry_after} seconds."
TRUSTED = ("127.0.0.0/8", "::1", "10.0.0.0/8")


class RecordingAgent:
    """Stands in for Rasa's agent: keeps each message (with its metadata) and answers "ok"."""

    def __init__(self) -> None:
        self.messages: List[UserMessage] = []

    async def handle_message(self, message: UserMessage) -> None:
        self.messages.append(message)
        await message.output_channel.send_text_message(message.sender_id, "ok")

    def metadata(self, sender: str) -> List[Dict[str, Any]]:
        return [message.metadata for message in self.messages if message.sender_id == sender]


class ChannelsApp:
    """REST, socket.io and Slack on a Sanic app served by its own event loop in a background thread."""

    def __init__(self, slack_secret: str, slack_api: SlackWebApi, jwt_key: Optional[str] = None) -> None:
        self.agent = RecordingAgent()
        self.app = Sanic(f"rate_limits_{uuid.uuid4().hex[:8]}")
        self.app.ctx.agent = self.agent
        register([ValidatingRestInput(),
                  SessionSocketIOInput(user_message_evt="user_uttered", bot_message_evt="bot_uttered",
                                       session_persistence=True, jwt_key=jwt_key),
                  EnvSlackInput("xoxb-test", slack_secret, api_url=slack_api.url)], self.app, route="/webhooks/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._originals: Dict[Tuple[type, str], Any] = {}
        threading.Thread(target=self._run, daemon=True).start()
        assert self._ready.wait(30), "the app did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            self._server = await self.app.create_server(host="127.0.0.1", port=self.port, access_log=False,
                                                        return_asyncio_server=True)
            # Sanic 21.12 rewrites some of its own methods ("touch-up") when an app starts and fails to do it a
            # second time in one process: an app started after another reuses the rewritten methods, and the
            # first one's harness puts the originals back when it stops, for the next test's app.
            if getattr(Sanic, "__touched__", False):
                with mock.patch.object(TouchUp, "run", classmethod(lambda cls, app: None)):
                    await self._server.startup()
            else:
                self._originals = {(target, name): getattr(target, name) for target, name in TouchUp._registry}
                await self._server.startup()
            await self._server.before_start()
            await self._server.after_start()

        self._loop.run_until_complete(serve())
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        for (target, name), method in self._originals.items():
            setattr(target, name, method)
            target.__touched__ = False


@pytest.fixture
def limiter(monkeypatch) -> RateLimiter:
    """Three messages a minute per client; loopback exempt, as shipped."""
    limiter = RateLimiter(RateLimits(window_seconds=60, per_client=LIMIT, message=MESSAGE), MemoryLog(),
                          exempt=("127.0.0.0/8", "::1"))
    for module in ("channels.rest", "channels.socketio", "channels.slack"):
        monkeypatch.setattr(f"{module}.get_rate_limiter", lambda: limiter)
    return limiter


@pytest.fixture
def slack_api() -> Iterator[SlackWebApi]:
    api = SlackWebApi()
    yield api
    api.close()


@pytest.fixture
def channels(limiter, slack_api) -> Iterator[ChannelsApp]:
    app = ChannelsApp(secrets.token_hex(16), slack_api)
    try:
        yield app
    finally:
        app.stop()


def wait_for(condition: Callable[[], Any], timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(condition())


def rest(app: ChannelsApp, sender: str, forwarded_for: str = "", **body: Any) -> requests.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return requests.post(f"{app.url}/webhooks/rest/webhook", json={"sender": sender, "message": "hi", **body},
                         headers=headers, timeout=10)


@pytest.mark.parametrize("peer, forwarded_for, expected", [
    ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),  # not from a balancer: the header is the client's own
    ("127.0.0.1", ["198.51.100.1"], "198.51.100.1"),  # from HAProxy on this machine
    ("127.0.0.1", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # what the client wrote itself is on the left
    ("127.0.0.1", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),  # the header sent twice
    ("10.1.2.3", ["198.51.100.1, 10.0.0.7"], "198.51.100.1"),  # CDN -> ingress -> pod: every trusted hop skipped
    ("127.0.0.1", [], "127.0.0.1"),
    ("127.0.0.1", ["[2001:db8::7]:4711"], "2001:db8::7"),
    ("127.0.0.1", ["198.51.100.1:4711"], "198.51.100.1"),
    ("127.0.0.1", ["not-an-address"], "not-an-address"),
    ("", [], "unknown"),
])
def test_the_client_address_is_the_last_untrusted_hop(peer, forwarded_for, expected):
    assert client_address(peer, forwarded_for, TRUSTED) == expected


def test_rest_answers_429_with_retry_after_past_the_limit(channels):
    client = "203.0.113.10"
    assert [rest(channels, f"c{n}", client).status_code for n in range(LIMIT)] == [200] * LIMIT
    refused = rest(channels, "c9", client)
    assert refused.status_code == 429
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert refused.json() == [{"text": MESSAGE.format(retry_after=retry_after)}]
    assert len(channels.agent.messages) == LIMIT  # the refused message never reached the bot
    assert rest(channels, "c9", "203.0.113.11").status_code == 200  # another client has its own count
    assert requests.get(f"{channels.url}/webhooks/rest/", timeout=10).status_code == 200  # health is not limited
    assert all(rest(channels, "local", "").status_code == 200 for _ in range(LIMIT + 2))  # loopback is exempt


def test_rest_messages_carry_the_client_address_the_channel_saw(channels):
    rest(channels, "meta", "6.6.6.6, 198.51.100.23", metadata={"client_address": "1.1.1.1", "page": "/help"})
    rest(channels, "meta", "198.51.100.23")
    assert channels.agent.metadata("meta") == [{CLIENT_ADDRESS: "198.51.100.23", "page": "/help"},
                                               {CLIENT_ADDRESS: "198.51.100.23"}]


def test_socketio_refuses_connections_and_answers_messages_politely_past_the_limit(channels):
    headers = {"X-Forwarded-For": "203.0.113.30"}
    answers: List[Dict[str, Any]] = []
    sessions: List[str] = []
    client = socketio.Client()
    client.on("bot_uttered", answers.append)
    client.on("session_confirm", sessions.append)
    client.connect(channels.url, headers=headers, transports=["polling"], wait_timeout=10)  # 1st of 3
    try:
        client.emit("session_request", {"session_id": None})
        assert wait_for(lambda: sessions)
        for number in range(3):  # the 2nd and 3rd are allowed, the 4th is over the limit
            client.emit("user_uttered", {"message": f"message {number}", "session_id": sessions[0]})
        assert wait_for(lambda: len(answers) >= 3)
        assert [answer["text"] for answer in answers[:2]] == ["ok", "ok"]
        assert answers[2]["text"].startswith("Too many messages: please wait ")
        assert [message.text for message in channels.agent.messages] == ["message 0", "message 1"]
        assert channels.agent.metadata(sessions[0])[0] == {CLIENT_ADDRESS: "203.0.113.30"}
    finally:
        client.eio.disconnect(abort=True)  # without waiting for the pending long-poll (up to 30 s)
    refused: List[Any] = []
    second = socketio.Client(reconnection=False)
    second.on("connect_error", refused.append)
    second.connect(channels.url, headers=headers, transports=["polling"], wait=False)
    try:
        assert wait_for(lambda: refused)
    finally:
        second.eio.disconnect(abort=True)
    assert "/" not in second.namespaces and refused[0]["message"].startswith("Too many messages: please wait ")
    assert 1 <= refused[0]["data"]["retry_after"] <= 60


def slack_request(channels: ChannelsApp, secret: str, user: str, number: int) -> requests.Response:
    body = message_event(f"hello {number}", user, f"D{user}", f"Ev{uuid.uuid4().hex[:10]}", f"{time.time():.6f}")
    headers = {"Content-Type": "application/json", **sign(secret, body)}
    return requests.post(f"{channels.url}/webhooks/slack/webhook", data=body, headers=headers, timeout=10)


def test_slack_limits_each_team_and_user_and_tells_them_once(channels, slack_api):
    secret = next(channel for channel in channels.app.ctx.input_channels
                  if isinstance(channel, EnvSlackInput)).slack_signing_secret
    statuses = [slack_request(channels, secret, "U1", number).status_code for number in range(LIMIT)]
    assert statuses == [200] * LIMIT
    refused = [slack_request(channels, secret, "U1", number) for number in range(LIMIT, LIMIT + 2)]
    assert [response.status_code for response in refused] == [429, 429]
    assert all(response.headers["X-Slack-No-Retry"] == "1" and int(response.headers["Retry-After"]) >= 1
               for response in refused)
    assert slack_request(channels, secret, "U2", 0).status_code == 200  # another user has their own count
    notices = slack_api.wait_for_post_containing("DU1", "Too many messages")
    time.sleep(0.5)
    assert sum("Too many messages" in (post.get("text") or "") for post in slack_api.posts("DU1")) == 1
    assert notices["channel"] == "DU1"
    metadata = [message.metadata for message in channels.agent.messages]
    assert {entry[CLIENT_ADDRESS] for entry in metadata} == {"slack:T0SHOP:U1", "slack:T0SHOP:U2"}


def test_replicas_share_the_count_through_redis():
    require_service("Redis", _port_open(REDIS_URL, 6379), REDIS_URL)
    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"test:rate:{uuid.uuid4().hex[:10]}:"
    limits = RateLimits(window_seconds=60, per_client=LIMIT, message=MESSAGE)
    replicas = [RateLimiter(limits, RedisLog(redis.Redis.from_url(REDIS_URL), prefix)) for _ in range(2)]
    try:
        waits = [replicas[number % 2].retry_after("198.51.100.77") for number in range(LIMIT + 1)]
        assert waits[:LIMIT] == [0] * LIMIT and 1 <= waits[LIMIT] <= 60
        assert replicas[0].retry_after("198.51.100.78") == 0
    finally:
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()


def test_a_rest_body_is_not_read_for_a_client_past_its_limit(channels):
    """The limit is checked before the body: a client past it gets 429 even for a body that would be a 400."""
    for number in range(LIMIT):
        rest(channels, f"b{number}", "203.0.113.40")
    response = requests.post(f"{channels.url}/webhooks/rest/webhook", data=b"{not json",
                             headers={"X-Forwarded-For": "203.0.113.40", "Content-Type": "application/json"},
                             timeout=10)
    assert response.status_code == 429 and json.loads(response.text)[0]["text"]


def test_socketio_still_checks_the_clients_token_when_one_is_configured(limiter, slack_api):
    """The connect handler replaces Rasa's: its JWT check (credentials.yml `jwt_key`) must still hold."""
    secret = secrets.token_hex(16)
    app = ChannelsApp(secrets.token_hex(16), slack_api, jwt_key=secret)
    try:
        for auth, accepted in [(None, False), ({"token": jwt.encode({"user": "x"}, "wrong", algorithm="HS256")}, False),
                               ({"token": jwt.encode({"user": "x"}, secret, algorithm="HS256")}, True)]:
            errors: List[Any] = []
            client = socketio.Client(reconnection=False)
            client.on("connect_error", errors.append)
            client.connect(app.url, auth=auth, transports=["polling"], wait=False)
            try:
                joined = lambda: "/" in client.namespaces  # noqa: B023, E731 - the namespace's CONNECT arrived
                assert wait_for(lambda: joined() or errors)  # noqa: B023 - used at once, in this iteration
                assert joined() == accepted and bool(errors) != accepted
            finally:
                client.eio.disconnect(abort=True)
    finally:
        app.stop()
