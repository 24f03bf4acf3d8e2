"""The Slack channel's two safeguards on their own (no servers): Slack's request signature, and the memory
that makes each event answered once."""

from __future__ import annotations

import pytest

from channels.slack import SeenRecently, signature_is_valid
from tests.channels.slack_support import sign

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BODY = b'{"type":"event_callback","event":{"type":"message","text":"hi"}}'
NOW = 1_700_000_000


def headers(secret: str = SECRET, body: bytes = BODY, at: int = NOW):
    signed = sign(secret, body, timestamp=at)
    return signed["X-Slack-Request-Timestamp"], signed["X-Slack-Signature"]


@pytest.mark.parametrize("age_s", [0, 299, -299])
def test_a_request_signed_with_the_apps_secret_in_the_last_five_minutes_is_valid(age_s):
    timestamp, signature = headers(at=NOW - age_s)
    assert signature_is_valid(SECRET, timestamp, BODY, signature, now=NOW)


@pytest.mark.parametrize("case", ["other secret", "changed body", "301 s old", "301 s ahead", "no timestamp",
                                  "no signature", "v1 scheme"])
def test_anything_else_is_invalid(case):
    timestamp, signature = headers(
        secret="another-app" if case == "other secret" else SECRET,
        at={"301 s old": NOW - 301, "301 s ahead": NOW + 301}.get(case, NOW),
    )
    body = BODY + b" " if case == "changed body" else BODY
    timestamp = "" if case == "no timestamp" else timestamp
    signature = {"no signature": "", "v1 scheme": signature.replace("v0=", "v1=")}.get(case, signature)
    assert not signature_is_valid(SECRET, timestamp, body, signature, now=NOW)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_event_is_new_once_and_any_shared_key_makes_it_a_repeat():
    seen = SeenRecently(ttl_s=60, clock=Clock())
    assert seen.first_time(["event:Ev1", "message:D1:1.0"])
    assert not seen.first_time(["event:Ev1", "message:D1:1.0"])  # a retry
    assert not seen.first_time(["event:Ev2", "message:D1:1.0"])  # the same message as another event
    assert seen.first_time(["event:Ev3", "message:D1:2.0"])


def test_events_are_forgotten_after_the_ttl_and_memory_stays_bounded():
    clock = Clock()
    seen = SeenRecently(ttl_s=60, max_keys=100, clock=clock)
    seen.first_time(["event:old"])
    clock.now = 61
    assert seen.first_time(["event:old"])
    for number in range(1000):
        seen.first_time([f"event:{number}"])
    assert len(seen._seen) <= 100
    assert not seen.first_time(["event:999"])  # the newest are the ones kept
