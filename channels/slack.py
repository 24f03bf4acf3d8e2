"""The Slack channel, configured from the environment and safe against forged requests and Slack's retries.

Rasa's SlackInput reads its secrets from credentials.yml, where `${VAR}` stops the whole server when a variable
is unset; it answers a retried event again unless the retry's reason is on a list (and drops a retry on that list
even when the first delivery never arrived); and it can answer twice a message that arrives both as a message and
as a mention. This channel (URL: /webhooks/slack/webhook):

- reads SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (and SLACK_API_URL, for a stand-in Web API) from the
  environment; without them its webhook answers 503 saying what to set, and every other channel works as usual;
- refuses a request whose signature is missing, wrong, or older than five minutes (401);
- acknowledges at once and answers in the background, so a reply slower than Slack's 3 s window still arrives;
- handles each event once: a retry (X-Slack-Retry-Num) or a second event about the same message is
  acknowledged and dropped;
- limits each Slack team and user to shop.yml `rate_limits` (every request comes from Slack's own addresses, so
  those say nothing about the sender): past it, 429 with Retry-After and X-Slack-No-Retry, and the user is told
  once per window, in Slack, when to try again (channels/ratelimit.py). The team and user are the message's
  `client_address` metadata for the verification throttle.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Callable, Dict, List, Optional

from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.slack import SlackBot, SlackInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from slack_sdk.web.async_client import AsyncWebClient

from channels.guard import Handler, answering_on_failure
from channels.ratelimit import get_rate_limiter
from shop.throttle import CLIENT_ADDRESS

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"
SIGNATURE_MAX_AGE_S = 5 * 60  # Slack's advice: older requests may be replays
REMEMBER_EVENTS_S = 15 * 60  # Slack retries three times: at once, after a minute, after five minutes
REMEMBER_EVENTS_MAX = 10_000
NOT_CONFIGURED = (
    "The Slack channel is not configured on this server: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET in the "
    "environment of `rasa run` and restart it (see the README, section Channels > Slack)."
)
MALFORMED = "The request is signed, but its event or interaction is not in the shape Slack documents."
BAD_SIGNATURE = "The request is not signed with this Slack app's signing secret (or is older than five minutes)."



def signature_is_valid(secret: str, timestamp: str, body: bytes, signature: str, now: float) -> bool:
    """Slack's v0 signature: `v0=` + HMAC-SHA256 of `v0:{timestamp}:{body}`, made in the last five minutes."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent_at) > SIGNATURE_MAX_AGE_S:
        return False
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v0={digest}", signature)


def slack_client(team: Any, user: Any) -> str:
    """Who sends a Slack message, for the rate limits and the verification throttle: the team and the user."""
    return f"slack:{team or '-'}:{user or '-'}"


class SeenRecently:
    """Keys seen in the last `ttl_s` seconds (at most `max_keys` of them), so that each event is answered once."""

    def __init__(self, ttl_s: float = REMEMBER_EVENTS_S, max_keys: int = REMEMBER_EVENTS_MAX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.max_keys, self.clock = ttl_s, max_keys, clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, keys: List[str]) -> bool:
        """Remember `keys`; True unless one of them was seen before."""
        now = self.clock()
        while self._seen and (len(self._seen) >= self.max_keys or next(iter(self._seen.values())) < now - self.ttl_s):
            self._seen.popitem(last=False)
        new = not any(key in self._seen for key in keys)
        for key in keys:
            self._seen[key] = now
            self._seen.move_to_end(key)
        return new


@dataclass
class SlackMessage:
    """What a Slack request asks the bot to answer."""

    text: str
    user: str
    channel: Optional[str]
    thread: Optional[str]
    keys: List[str]  # identify the event, so that a retry or a duplicate is recognised
    metadata: Dict[str, Any]


class SlackOutput(SlackBot):
    """Rasa's Slack output, posting to a configurable Web API as the app's bot user."""

    def __init__(self, token: str, api_url: str, channel: Optional[str], thread_id: Optional[str]) -> None:
        super().__init__(token, channel, thread_id)
        self.client = AsyncWebClient(token, base_url=api_url)

    async def _post_message(self, channel: str, **kwargs: Any) -> None:
        kwargs.pop("as_user", None)  # legacy: Slack apps with bot tokens post as their bot user anyway
        await super()._post_message(channel, **kwargs)


class EnvSlackInput(SlackInput):
    """Slack Events API and interactivity webhook; message parsing is Rasa's, security and delivery are ours."""

    @classmethod
    def name(cls) -> str:
        return "slack"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> EnvSlackInput:
        """Secrets from the environment; credentials.yml may set `use_threads` and `conversation_granularity`."""
        credentials = credentials or {}
        return cls(
            slack_token=os.environ.get("SLACK_BOT_TOKEN", "").strip(),
            slack_signing_secret=os.environ.get("SLACK_SIGNING_SECRET", "").strip(),
            api_url=os.environ.get("SLACK_API_URL", "").strip() or DEFAULT_API_URL,
            use_threads=bool(credentials.get("use_threads", False)),
            conversation_granularity=credentials.get("conversation_granularity", "sender"),
        )

    def __init__(self, slack_token: str, slack_signing_secret: str, api_url: str = DEFAULT_API_URL,
                 use_threads: bool = False, conversation_granularity: str = "sender") -> None:
        self.api_url = api_url
        self.seen = SeenRecently()
        self.told_to_wait = SeenRecently(ttl_s=get_rate_limiter().limits.window_seconds)
        super().__init__(slack_token, slack_signing_secret=slack_signing_secret, use_threads=use_threads,
                         conversation_granularity=conversation_granularity)

    @property
    def configured(self) -> bool:
        return bool(self.slack_token and self.slack_signing_secret)

    def _validate_credentials(self) -> None:
        """Warns instead of raising: a server without Slack settings must still serve its other channels."""
        missing = [name for name, value in (("SLACK_BOT_TOKEN", self.slack_token),
                                            ("SLACK_SIGNING_SECRET", self.slack_signing_secret)) if not value]
        if missing:
            logger.warning(f"Slack channel off: {', '.join(missing)} not set; /webhooks/slack/webhook answers 503.")

    def get_output_channel(self, channel: Optional[str] = None, thread_id: Optional[str] = None) -> OutputChannel:
        return SlackOutput(self.slack_token, self.api_url, channel or self.slack_channel, thread_id)

    def blueprint(self, on_new_message: Handler) -> Blueprint:
        on_new_message = answering_on_failure(on_new_message)  # an apology when a part behind Rasa fails
        slack = Blueprint("shop_slack_webhook", __name__)

        @slack.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok" if self.configured else "not configured"})

        @slack.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            if not self.configured:
                return response.text(NOT_CONFIGURED, status=HTTPStatus.SERVICE_UNAVAILABLE,
                                     headers={"X-Slack-No-Retry": "1"})
            if not signature_is_valid(self.slack_signing_secret, request.headers.get("X-Slack-Request-Timestamp", ""),
                                      request.body, request.headers.get("X-Slack-Signature", ""), time.time()):
                logger.warning("Refused a request to the Slack webhook without a valid signature.")
                return response.text(BAD_SIGNATURE, status=HTTPStatus.UNAUTHORIZED)
            try:
                body = self._body(request)
            except ValueError as exc:
                return response.text(str(exc), status=HTTPStatus.BAD_REQUEST)
            if body.get("type") == "url_verification":
                return response.json({"challenge": body.get("challenge")})
            try:
                message = self._message(body)
            except (AttributeError, TypeError, KeyError, IndexError) as exc:
                # Signed, so from Slack (or a holder of the secret), yet not in a shape Slack documents.
                logger.warning(f"Refused a signed Slack request of an unexpected shape: {exc.__class__.__name__}")
                return response.text(MALFORMED, status=HTTPStatus.BAD_REQUEST, headers={"X-Slack-No-Retry": "1"})
            if message is None:
                return response.text("")  # not for the bot (its own posts, edits, other channels): acknowledged
            if not self.seen.first_time(message.keys):
                logger.info(f"Slack event {message.keys[0]} already handled (retry "
                            f"{request.headers.get('X-Slack-Retry-Num', '-')}): acknowledged, not answered again.")
                return response.text("", headers={"X-Slack-No-Retry": "1"})
            limiter = get_rate_limiter()
            retry_after = limiter.retry_after(message.metadata[CLIENT_ADDRESS])
            if retry_after:
                if self.told_to_wait.first_time([message.metadata[CLIENT_ADDRESS]]):
                    self._tell_in_background(message, limiter.message(retry_after))
                return response.text(limiter.message(retry_after), status=HTTPStatus.TOO_MANY_REQUESTS,
                                     headers={"Retry-After": str(retry_after), "X-Slack-No-Retry": "1"})
            self._answer_in_background(on_new_message, message)
            return response.text("")

        return slack

    @staticmethod
    def _body(request: Request) -> Dict[str, Any]:
        """The event (JSON) or the interaction (form field `payload`, JSON) a request carries."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if content_type == "application/json":
                body = json.loads(request.body)
            elif content_type == "application/x-www-form-urlencoded":
                body = json.loads(request.form.get("payload") or "")
            else:
                raise ValueError(f"Unsupported content type {content_type!r}: Slack sends JSON or form data.")
        except json.JSONDecodeError as exc:
            raise ValueError(f"The body is not valid Slack JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ValueError("The body must be a JSON object.")
        return body

    def _message(self, body: Dict[str, Any]) -> Optional[SlackMessage]:
        """The user's message in an event or a button click, or None when there is nothing to answer."""
        if body.get("type") == "event_callback":
            return self._event_message(body)
        if body.get("type") == "block_actions" and self._is_interactive_message(body):
            return self._click_message(body)
        return None

    def _event_message(self, body: Dict[str, Any]) -> Optional[SlackMessage]:
        event = body.get("event") or {}
        users = body.get("authed_users") or [auth.get("user_id") for auth in (body.get("authorizations") or [])[:1]]
        channel = event.get("channel")
        metadata = {"out_channel": channel, "thread_id": event.get("thread_ts", event.get("ts")), "users": users,
                    CLIENT_ADDRESS: slack_client(body.get("team_id") or event.get("team"), event.get("user"))}
        if not self._is_user_message(body) or not self._is_supported_channel(body, metadata):
            return None
        # A mention in a channel also arrives as a message event: both carry the message's channel and ts.
        keys = [f"event:{body.get('event_id')}", f"message:{channel}:{event.get('ts')}"]
        return SlackMessage(self._sanitize_user_message(event["text"], users), event.get("user", ""), channel,
                            metadata["thread_id"], keys, metadata)

    def _click_message(self, body: Dict[str, Any]) -> Optional[SlackMessage]:
        action = body["actions"][0]
        text = self._get_interactive_response(action)
        if text is None:
            return None  # a link button: Slack opens the link, the bot has nothing to answer
        user = (body.get("user") or {}).get("id", "")
        channel = (body.get("channel") or {}).get("id")
        posted = body.get("message") or {}
        team = (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id")
        metadata = {"out_channel": channel, "thread_id": posted.get("thread_ts", posted.get("ts")), "users": [user],
                    CLIENT_ADDRESS: slack_client(team, user)}
        keys = [f"action:{body.get('trigger_id') or action.get('action_ts')}"]
        return SlackMessage(text, user, channel, metadata["thread_id"], keys, metadata)

    def _answer_in_background(self, on_new_message: Handler, message: SlackMessage) -> None:
        """Run the bot after the acknowledgement went out; its replies go through the Web API."""
        thread = message.thread if self.use_threads else None
        user_message = UserMessage(
            message.text, self.get_output_channel(message.channel, thread),
            self._get_conversation_id(message.user, message.channel, message.thread),
            input_channel=self.name(), metadata=message.metadata,
        )
        task = asyncio.create_task(on_new_message(user_message))
        self._background_tasks.add(task)
        task.add_done_callback(self._answered)

    def _tell_in_background(self, message: SlackMessage, text: str) -> None:
        """Post `text` to the user (the rate-limit notice) after the response went out."""
        thread = message.thread if self.use_threads else None
        output = self.get_output_channel(message.channel, thread)
        recipient = self._get_conversation_id(message.user, message.channel, message.thread)
        task = asyncio.create_task(output.send_text_message(recipient, text))
        self._background_tasks.add(task)
        task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Task) -> None:
        self._background_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("Answering a Slack message failed.", exc_info=task.exception())
