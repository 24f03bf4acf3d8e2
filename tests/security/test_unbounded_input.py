"""Unbounded consumption: what one long message costs. No channel limits a message's length (REST, socket.io up to
engine.io's 1 MB, Slack), and the NLU runs on Rasa's event loop, so a message that is slow to parse stalls every
conversation of that server while it is parsed."""

from __future__ import annotations

import time

import pytest

from custom_components.frustration_detector import style_cues


def test_ordinary_long_messages_are_cheap():
    started = time.monotonic()
    style_cues("where is my order? " * 1_000)  # 19,000 characters in words
    assert time.monotonic() - started < 0.25


@pytest.mark.xfail(strict=True, reason="custom_components/frustration_detector.py style_cues: "
                   "re.sub(r'\\S+@\\S+|\\S+\\.(?:com|org|net|co\\.uk)\\S*', ...) backtracks quadratically over one "
                   "long run of non-spaces: 10,000 characters 0.9 s, 50,000 13.5 s, 200,000 179 s through the real "
                   "REST webhook, with Rasa's event loop blocked meanwhile (every conversation waits). Fix: match "
                   "per whitespace-separated token (or anchor with (?<!\\S)), and limit a message's length in the "
                   "channels")
def test_one_long_word_is_cheap():
    started = time.monotonic()
    style_cues("x" * 20_000)
    assert time.monotonic() - started < 0.25
