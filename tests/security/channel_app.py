"""The project's three channels (credentials.yml's REST, socket.io and Slack classes) mounted on a Sanic app in this
process, the way `rasa run` mounts them (rasa.core.channels.channel.register), with a stand-in for Rasa's agent that
keeps every message it is given per conversation (the "tracker") and answers "ok". For fuzzing the webhooks in
seconds, without a trained model. Slack's Web API is the stand-in of tests/channels/slack_support.py."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
import traceback
from collections import Counter, defaultdict
from typing import Any, Callable, Dict, List, Optional

from rasa.core.channels.channel import UserMessage, register
from sanic import Sanic

from channels.rest import ValidatingRestInput
from channels.slack import EnvSlackInput
from channels.socketio import SessionSocketIOInput
from shop.servers import free_port
from tests.channels.slack_support import SlackWebApi
from tests.security.fuzz import dumps

ANSWER = "ok"
# Loggers whose errors mean a request or an event was not handled (sanic logs each 500 here, engine.io and
# socket.io each exception in a handler, the channels each failure they apologise for; ErrorLog.is_failure).
ERROR_LOGGERS = ("sanic.error", "sanic.root", "engineio.server", "socketio.server", "channels", "rasa.core.channels",
                 "asyncio")


class RecordingAgent:
    """Stands in for rasa.core.agent.Agent: every message is kept (as a tracker would) and answered."""

    def __init__(self) -> None:
        self.messages: Dict[str, List[str]] = defaultdict(list)
        self.channels: Counter = Counter()  # messages per input channel
        self._changed = threading.Condition()

    async def handle_message(self, message: UserMessage) -> None:
        with self._changed:
            self.messages[message.sender_id].append(message.text)
            self.channels[message.input_channel] += 1
            self._changed.notify_all()
        await message.output_channel.send_text_message(message.sender_id, ANSWER)

    def wait_for(self, sender: str, count: int, timeout_s: float = 10) -> List[str]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.messages.get(sender, ())) >= count, timeout=timeout_s)
            return list(self.messages.get(sender, ()))


class ErrorLog(logging.Handler):
    """ERROR records of ERROR_LOGGERS while the app runs."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @staticmethod
    def is_failure(record: logging.LogRecord) -> bool:
        """A record that says a handler failed: an exception while handling a request (what Sanic answers 500) or a
        socket.io event, a task that died, a channel's own error. Requests refused on purpose that a library logs at
        ERROR (engine.io's "unsupported version", Sanic's "Failed when parsing form" before a 400) are not."""
        message = record.getMessage()
        if record.name == "sanic.error":
            return message.startswith("Exception occurred while handling")
        if record.name == "engineio.server":
            # A packet whose bytes are not UTF-8, not a socket.io packet, or of a type only a server may send
            # (CONNECT_ERROR): the libraries drop it, log it with its traceback and answer 200; no handler of the
            # project ran.
            frames = traceback.extract_tb(record.exc_info[2]) if record.exc_info else []
            refused_packet = bool(frames) and isinstance(record.exc_info[1], ValueError) and \
                frames[-1].name == "_handle_eio_message" and frames[-1].filename.endswith(
                    ("socketio/async_server.py", "socketio/server.py"))
            undecodable = bool(record.exc_info) and (
                isinstance(record.exc_info[1], UnicodeDecodeError) or refused_packet
                or any(frame.filename.endswith(("socketio/packet.py", "engineio/packet.py")) for frame in frames))
            return "handler error" in message and not undecodable
        return record.name != "sanic.root"

    def failures(self) -> List[logging.LogRecord]:
        return [record for record in self.records if self.is_failure(record)]

    def summary(self, records: Optional[List[logging.LogRecord]] = None) -> List[str]:
        return [f"{record.name}: {record.getMessage()[:200]}"
                + (f" ({record.exc_info[0].__name__}: {record.exc_info[1]})" if record.exc_info else "")
                for record in (self.failures() if records is None else records)]


class ChannelApp:
    """The app on a free port, served by its own event loop in a background thread."""

    def __init__(self, slack_secret: str, slack_token: str = "xoxb-fuzz-token") -> None:
        self.slack_api = SlackWebApi()
        self.slack_secret = slack_secret
        self.agent = RecordingAgent()
        self.app = Sanic(f"security_fuzz_{free_port()}")
        self.app.ctx.agent = self.agent
        register([
            ValidatingRestInput(),
            SessionSocketIOInput(user_message_evt="user_uttered", bot_message_evt="bot_uttered",
                                 session_persistence=True),
            EnvSlackInput(slack_token, slack_secret, api_url=self.slack_api.url),
        ], self.app, route="/webhooks/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.errors = ErrorLog()
        self.statuses: Dict[str, Counter] = defaultdict(Counter)
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._ready = threading.Event()

    def start(self) -> ChannelApp:
        for name in ERROR_LOGGERS:
            logging.getLogger(name).addHandler(self.errors)
        threading.Thread(target=self._run, daemon=True).start()
        if not self._ready.wait(30):
            raise RuntimeError("the channel app did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            # asyncio's server listens from here on; run_forever below keeps it serving.
            self._server = await self.app.create_server(host="127.0.0.1", port=self.port, access_log=False,
                                                        return_asyncio_server=True)
            await self._server.startup()
            await self._server.before_start()
            await self._server.after_start()

        self._loop.run_until_complete(serve())
        self._ready.set()
        self._loop.run_forever()

    def count(self, channel: str, status: int) -> None:
        self.statuses[channel][status] += 1

    def server_errors(self, channel: Optional[str] = None) -> int:
        channels = [channel] if channel else list(self.statuses)
        return sum(n for name in channels for status, n in self.statuses[name].items() if status >= 500)

    def stop(self) -> None:
        for name in ERROR_LOGGERS:
            logging.getLogger(name).removeHandler(self.errors)

        async def shutdown() -> None:
            self._server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self.slack_api.close()


def wait_until(condition: Callable[[], bool], timeout_s: float = 10, step_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step_s)
    return condition()


def engineio_exchange(http: Any, exchange: Dict) -> None:
    """A handshake with fuzzed parameters, then the packets; and, when the example has one, a fuzzed user_uttered in
    a session joined properly (so that it reaches the channel's handler and the agent). Each answered below 500.
    `http.request(method, path, **kwargs)` sends one request to the server (and counts it)."""
    def post(path: str, packet: bytes, content_type: str) -> None:
        answer = http.request("POST", path, data=packet, headers={"Content-Type": content_type})
        assert answer.status_code < 500, (answer.status_code, packet[:200], answer.text[:300])

    def handshake(query: str) -> Optional[str]:
        opened = http.request("GET", f"/socket.io/?{query}")
        assert opened.status_code < 500, (opened.status_code, opened.text[:300])
        return json.loads(opened.text[1:])["sid"] if opened.status_code == 200 and opened.text[:2] == "0{" else None

    sid = handshake(f"EIO={exchange['eio']}&transport={exchange['transport']}")
    sid = {"own": sid, "forged": secrets.token_urlsafe(15), "none": None}[exchange["sid"]]
    path = "/socket.io/?EIO=4&transport=polling" + (f"&sid={sid}" if sid else "")
    packets = [b"40"] + ([b'42["session_request",{"session_id":null}]'] if exchange["session_request_first"] else [])
    for packet in packets + exchange["packets"]:
        post(path, packet, exchange["content_type"])
    if exchange["in_session"] is None:
        return
    path = f"/socket.io/?EIO=4&transport=polling&sid={handshake('EIO=4&transport=polling')}"
    for packet in (b"40", b'42["session_request",{"session_id":null}]'):
        post(path, packet, "text/plain;charset=UTF-8")
    polled = http.request("GET", path)
    confirmed = [json.loads(packet[2:])[1] for packet in polled.text.split("\x1e")
                 if packet.startswith('42["session_confirm"')]
    assert confirmed, polled.text[:300]
    post(path, b"42" + dumps(["user_uttered", {**exchange["in_session"], "session_id": confirmed[0]}], True),
         "text/plain;charset=UTF-8")
