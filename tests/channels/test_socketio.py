"""The socket.io channel at the protocol level, as any client (not only webchat/) sees it: a connection speaks
only for the session it joined, and cannot join a conversation by naming it."""

from __future__ import annotations

import re
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest
import requests
import socketio

pytestmark = pytest.mark.e2e

QUIET_S = 2.0  # how long "no answer" is watched for; an answer here takes well under a second


class Client:
    """A python-socketio client that collects the session confirmation and the bot's messages."""

    def __init__(self, url: str) -> None:
        self.sio = socketio.Client()
        self.confirmed = threading.Event()
        self.session_id = ""
        self.bot: List[Dict[str, Any]] = []
        self.sio.on("session_confirm", self._confirm)
        self.sio.on("bot_uttered", self.bot.append)
        self.sio.connect(url, transports=["polling"], wait_timeout=30)

    def _confirm(self, session_id: str) -> None:
        self.session_id = session_id
        self.confirmed.set()

    def join(self, session_id: Any) -> str:
        self.confirmed.clear()
        self.sio.emit("session_request", {"session_id": session_id})
        assert self.confirmed.wait(30)
        return self.session_id


@pytest.fixture
def client(servers) -> Iterator[Client]:
    connected = Client(servers.rasa_url)
    try:
        yield connected
    finally:
        connected.sio.eio.disconnect(abort=True)  # without waiting for the pending long-poll (up to 30 s)


def test_a_session_id_that_the_server_could_not_have_issued_is_replaced(client):
    first = client.join(None)
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert client.join(first) == first  # resuming works
    for chosen in ["alice", "rest-victim", "0" * 31, first.upper()]:
        assert client.join(chosen) not in (chosen, first)


def test_a_message_for_another_conversation_is_ignored(client, servers):
    victim = "socketio-victim"
    servers.running.send(victim, "where is my order?")
    servers.running.send(victim, "10002")
    servers.running.send(victim, "alice@example.com")  # verified: the next question would reveal the order
    tracker = f"{servers.rasa_url}/conversations/{victim}/tracker"
    events_before = len(requests.get(tracker, params={"token": servers.auth_token}, timeout=30).json()["events"])

    client.join(None)
    client.sio.emit("user_uttered", {"message": "where is my order?", "session_id": victim})
    time.sleep(QUIET_S)
    assert client.bot == []
    events_after = len(requests.get(tracker, params={"token": servers.auth_token}, timeout=30).json()["events"])
    assert events_after == events_before

    client.sio.emit("user_uttered", {"message": "hi", "session_id": client.session_id})
    deadline = time.monotonic() + 60
    while not client.bot and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Northwind" in client.bot[0]["text"]  # its own session still works
