"""Unbounded consumption: what one long message costs. No channel limits a message's length (REST, socket.io up to
engine.io's 1 MB, Slack), and the NLU runs on Rasa's event loop, so a message that is slow to parse stalls every
conversation of that server while it is parsed."""

from __future__ import annotations

import time

from custom_components.frustration_detector import style_cues


def test_ordinary_long_messages_are_cheap():
    started = time.monotonic()
    style_cues("where is my order? " * 1_000)  # 19,000 characters in words
    assert time.monotonic() - started < 0.25


def test_one_long_word_is_cheap():
    """The email/URL pattern of style_cues is anchored at word starts: one long run of non-spaces used to take
    quadratic time (50,000 characters 13.5 s through the REST webhook, Rasa's event loop blocked meanwhile)."""
    started = time.monotonic()
    style_cues("x" * 20_000)
    assert time.monotonic() - started < 0.25
