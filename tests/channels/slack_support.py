"""Playing Slack's side: signed Events API and interactivity requests, and a stand-in for Slack's Web API that
records what the bot posts (the channel's SLACK_API_URL points at it)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import parse_qs, urlencode


def sign(secret: str, body: bytes, timestamp: Optional[int] = None) -> Dict[str, str]:
    """The headers Slack sends with a request: its timestamp and v0 signature."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def message_event(text: str, user: str, channel: str, event_id: str, ts: str, kind: str = "message") -> bytes:
    """An Events API callback for a direct message to the bot (or, with kind="app_mention", a mention)."""
    return json.dumps({
        "token": "unused", "team_id": "T0SHOP", "api_app_id": "A0SHOP", "type": "event_callback",
        "event_id": event_id, "event_time": int(time.time()),
        "authorizations": [{"team_id": "T0SHOP", "user_id": "U0BOT", "is_bot": True}],
        "event": {"type": kind, "channel": channel, "channel_type": "im", "user": user, "text": text, "ts": ts,
                  "event_ts": ts},
    }).encode()


def button_click(button: Dict[str, Any], user: str, channel: str, message_ts: str, trigger_id: str) -> bytes:
    """The interactivity request Slack sends when `user` clicks a button the bot posted (form-encoded)."""
    payload = {
        "type": "block_actions", "trigger_id": trigger_id, "user": {"id": user}, "channel": {"id": channel},
        "message": {"ts": message_ts}, "team": {"id": "T0SHOP"},
        "actions": [{"type": "button", "action_id": "a", "block_id": "b", "text": button["text"],
                     "value": button["value"], "action_ts": f"{time.time():.6f}"}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


class SlackWebApi:
    """Records every Web API call; `delay_s[channel]` makes chat.postMessage to that channel slow."""

    def __init__(self) -> None:
        self.calls: List[Dict[str, Any]] = []
        self.delay_s: Dict[str, float] = {}
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/api/"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _handler(self) -> type:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    args = json.loads(raw or b"{}")
                else:
                    args = {key: values[0] for key, values in parse_qs(raw.decode()).items()}
                method = self.path.rsplit("/", 1)[-1]
                if method == "chat.postMessage":
                    time.sleep(api.delay_s.get(args.get("channel", ""), 0))
                api.record({"method": method, "authorization": self.headers.get("Authorization"), **args})
                answer = {"ok": True, "channel": args.get("channel"), "ts": f"{time.time():.6f}"}
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args: object) -> None:
                """Request lines would drown pytest's output."""

        return Handler

    def record(self, call: Dict[str, Any]) -> None:
        with self._changed:
            call["at"] = time.monotonic()
            self.calls.append(call)
            self._changed.notify_all()

    def posts(self, channel: str) -> List[Dict[str, Any]]:
        with self._changed:
            return [c for c in self.calls if c["method"] == "chat.postMessage" and c.get("channel") == channel]

    def wait_for_posts(self, channel: str, count: int, timeout_s: float = 60) -> List[Dict[str, Any]]:
        """The posts to `channel` once there are at least `count` (fails after `timeout_s`)."""
        return self._wait_for(channel, lambda posts: posts if len(posts) >= count else None,
                              f"{count} posts", timeout_s)

    def wait_for_post_containing(self, channel: str, text: str, timeout_s: float = 60) -> Dict[str, Any]:
        """The first post to `channel` whose text contains `text`: a conversation's answer, whatever came before it
        (an acknowledgement of an upset message, for example)."""
        return self._wait_for(channel, lambda posts: next((post for post in posts
                                                           if text in (post.get("text") or "")), None),
                              f"a post containing {text!r}", timeout_s)

    def _wait_for(self, channel: str, found: Callable[[List[Dict[str, Any]]], Any], expected: str,
                  timeout_s: float) -> Any:
        """What `found` returns for the posts to `channel` as soon as it is not None (fails after `timeout_s`)."""
        with self._changed:
            if not self._changed.wait_for(lambda: found(self.posts(channel)) is not None, timeout=timeout_s):
                raise AssertionError(f"{expected} to {channel} expected within {timeout_s} s, got "
                                     f"{[p.get('text') for p in self.posts(channel)]}")
            return found(self.posts(channel))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
