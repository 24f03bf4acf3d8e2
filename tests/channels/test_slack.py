"""The Slack channel against the real bot: signed Events API and interactivity requests go to its webhook, Slack's
Web API is a local stand-in that records what the bot posts. Each message gets exactly one reply; forged or
stale requests get none; retries and slow replies do not double anything."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Dict, Iterator

import pytest
import requests
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shop.db import make_engine
from shop.models import Order
from shop.servers import RunningServers, start_servers
from tests.channels.slack_support import SlackWebApi, button_click, message_event, sign

pytestmark = pytest.mark.e2e

QUIET_S = 2.0  # how long "no (second) reply" is watched for; a reply here takes well under a second
ACK_WINDOW_S = 3.0  # Slack retries an event it has no answer to within this


@dataclass
class SlackBot:
    running: RunningServers
    api: SlackWebApi
    secret: str
    token: str
    engine: Engine

    @property
    def webhook(self) -> str:
        return f"{self.running.rasa_url}/webhooks/slack/webhook"

    def post(self, body: bytes, headers: Dict[str, str],
             content_type: str = "application/json") -> requests.Response:
        return requests.post(self.webhook, data=body, headers={"Content-Type": content_type, **headers}, timeout=30)

    def say(self, text: str, user: str, channel: str) -> requests.Response:
        """A direct message, signed as Slack signs it; a unique event id and ts per call."""
        body = message_event(text, user, channel, f"Ev{secrets.token_hex(6)}", f"{time.time():.6f}")
        return self.post(body, sign(self.secret, body))


@pytest.fixture(scope="module")
def slack(tmp_path_factory, trained_model) -> Iterator[SlackBot]:
    work = tmp_path_factory.mktemp("slack-servers")
    database_url = f"sqlite:///{work / 'shop.db'}"
    make_engine(database_url, seed_demo=True).dispose()
    api = SlackWebApi()
    secret, token = secrets.token_hex(16), f"xoxb-test-{secrets.token_hex(8)}"
    env = {"SLACK_BOT_TOKEN": token, "SLACK_SIGNING_SECRET": secret, "SLACK_API_URL": api.url}
    running = start_servers(work, database_url, trained_model, extra_env=env)
    engine = create_engine(database_url, future=True)
    try:
        yield SlackBot(running, api, secret, token, engine)
    finally:
        engine.dispose()
        running.stop()
        api.close()


def assert_no_more_posts(slack: SlackBot, channel: str, count: int, quiet_s: float = QUIET_S) -> None:
    time.sleep(quiet_s)
    assert len(slack.api.posts(channel)) == count, [post.get("text") for post in slack.api.posts(channel)]


def test_url_verification_gets_the_challenge_back(slack):
    body = json.dumps({"type": "url_verification", "token": "unused", "challenge": "c-123"}).encode()
    response = slack.post(body, sign(slack.secret, body))
    assert response.status_code == 200 and response.json() == {"challenge": "c-123"}


def test_a_direct_message_gets_exactly_one_reply_posted_with_the_bot_token(slack):
    started = time.monotonic()
    response = slack.say("hi", "U1HELLO", "D1HELLO")
    assert response.status_code == 200 and time.monotonic() - started < ACK_WINDOW_S
    [reply] = slack.api.wait_for_posts("D1HELLO", 1)
    assert "Northwind" in reply["text"] and reply["authorization"] == f"Bearer {slack.token}"
    assert "as_user" not in reply
    assert_no_more_posts(slack, "D1HELLO", 1)


def forged(slack: SlackBot, body: bytes, case: str) -> Dict[str, str]:
    """Headers for a request the webhook must refuse."""
    if case == "missing-signature":
        return {}
    if case == "other-secret":
        return sign("not-the-apps-secret", body)
    if case == "tampered-body":
        return sign(slack.secret, body.replace(b"where is my order", b"cancel my order 10003"))
    if case == "six-minutes-old":
        return sign(slack.secret, body, timestamp=int(time.time()) - 360)
    raise ValueError(case)


@pytest.mark.parametrize("case", ["missing-signature", "other-secret", "tampered-body", "six-minutes-old"])
def test_requests_without_a_valid_signature_are_refused_and_get_no_reply(slack, case):
    channel = f"D2{case.upper().replace('-', '')}"
    body = message_event("where is my order", "U2FORGER", channel, f"Ev{secrets.token_hex(6)}", f"{time.time():.6f}")
    response = slack.post(body, forged(slack, body, case))
    assert response.status_code == 401 and "signed" in response.text
    assert_no_more_posts(slack, channel, 0)


def test_a_slow_reply_arrives_once_although_slack_retries_the_event(slack):
    delay_s = slack.api.delay_s["D3SLOW"] = ACK_WINDOW_S + 1.5  # the reply takes longer than Slack waits
    body = message_event("hi", "U3SLOW", "D3SLOW", "Ev3SLOW", f"{time.time():.6f}")
    started = time.monotonic()
    assert slack.post(body, sign(slack.secret, body)).status_code == 200
    assert time.monotonic() - started < ACK_WINDOW_S
    for attempt in (1, 2):  # what Slack does when the first delivery seemed to time out
        retry = slack.post(body, {**sign(slack.secret, body), "X-Slack-Retry-Num": str(attempt),
                                  "X-Slack-Retry-Reason": "http_timeout"})
        assert retry.status_code == 200
    [reply] = slack.api.wait_for_posts("D3SLOW", 1)
    assert "Northwind" in reply["text"] and reply["at"] - started > ACK_WINDOW_S
    assert_no_more_posts(slack, "D3SLOW", 1, quiet_s=delay_s + QUIET_S)  # a second reply would be as slow


def test_a_retry_of_an_event_never_received_is_answered(slack):
    """When the first delivery never reached the bot (it was down), Slack's retry is the message: answer it."""
    body = message_event("hi", "U4LATE", "D4LATE", "Ev4LATE", f"{time.time():.6f}")
    headers = {**sign(slack.secret, body), "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"}
    assert slack.post(body, headers).status_code == 200
    [reply] = slack.api.wait_for_posts("D4LATE", 1)
    assert "Northwind" in reply["text"]
    assert_no_more_posts(slack, "D4LATE", 1)


def test_a_message_that_also_arrives_as_a_mention_is_answered_once(slack):
    ts = f"{time.time():.6f}"
    as_message = message_event("<@U0BOT> hi", "U5BOTH", "D5BOTH", "Ev5MESSAGE", ts)
    as_mention = message_event("<@U0BOT> hi", "U5BOTH", "D5BOTH", "Ev5MENTION", ts, kind="app_mention")
    for body in (as_message, as_mention):
        assert slack.post(body, sign(slack.secret, body)).status_code == 200
    [reply] = slack.api.wait_for_posts("D5BOTH", 1)
    assert "Northwind" in reply["text"]
    assert_no_more_posts(slack, "D5BOTH", 1)


def test_cancelling_by_clicking_the_bots_button(slack):
    user, channel = "U6CANCEL", "D6CANCEL"
    for text, answer in (("please cancel my order", "What's your order number?"),
                         ("10003", "And the email address"), ("bob@example.com", "cancel order 10003")):
        assert slack.say(text, user, channel).status_code == 200
        question = slack.api.wait_for_post_containing(channel, answer)
    buttons = {element["text"]["text"]: element for block in question["blocks"] if block["type"] == "actions"
               for element in block["elements"]}
    assert set(buttons) == {"Yes, cancel it", "No, keep it"}
    click = button_click(buttons["Yes, cancel it"], user, channel, f"{time.time():.6f}", "T6CLICK")
    response = slack.post(click, sign(slack.secret, click), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    slack.api.wait_for_post_containing(channel, "Order 10003 is cancelled")
    with Session(slack.engine) as session:
        assert session.get(Order, "10003").status == "cancelled"
    time.sleep(QUIET_S)  # everything the first click caused has arrived
    answered = len(slack.api.posts(channel))
    assert slack.post(click, sign(slack.secret, click), content_type="application/x-www-form-urlencoded").ok
    assert_no_more_posts(slack, channel, answered)  # the same click delivered twice is answered once


def test_without_slack_settings_the_webhook_says_what_to_set_and_other_channels_work(servers):
    """The shared channel servers run with the project's credentials.yml and no SLACK_* variables."""
    body = message_event("hi", "U7", "D7", "Ev7", f"{time.time():.6f}")
    response = requests.post(f"{servers.rasa_url}/webhooks/slack/webhook", data=body,
                             headers={"Content-Type": "application/json", **sign("any", body)}, timeout=30)
    assert response.status_code == 503
    assert "SLACK_BOT_TOKEN" in response.text and "SLACK_SIGNING_SECRET" in response.text
    assert response.headers.get("X-Slack-No-Retry") == "1"
    assert "Northwind" in servers.running.send("slack-off-rest", "hi")[0]["text"]
