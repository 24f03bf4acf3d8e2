"""Hypothesis strategies for what an attacker (or a broken client) sends to the webhooks: malformed JSON, wrong types,
huge strings, odd unicode, NUL bytes, missing and extra fields, bad or missing Slack signatures."""

from __future__ import annotations

import json
import time
from typing import Any, Dict, Tuple

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.channels.slack_support import sign

# Deterministic (the same examples every run, so CI cannot flake on a new one), nothing stored on disk.
FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture, HealthCheck.large_base_example])

NASTY_STRINGS = [
    "", " ", "\0", "a\0b", "\ud800", "x\udfffy", "\ufeff", "\u202eevil", "\u200b" * 50, "😀" * 500, "ß" * 300,
    "' OR 1=1 --", "<script>alert(1)</script>", "{0}{1}%s%n", "${jndi:ldap://x/a}", "../../../etc/passwd",
    "/restart", "/inform{\"order_id\": \"10003\"}", "/session_start", "\r\n\r\nHTTP/1.1 200 OK", "null", "[]", "{}",
    "9" * 400, "-1", "NaN", "Infinity", "\\u0000", "\x1b[31mred", "\t\n\r\x0b\x0c",
]
HUGE_LENGTHS = [10_000, 300_000, 1_200_000]
# socket.io: engine.io refuses a POST over 1,000,000 bytes by never answering it (test_channel_fuzz.py,
# test_an_oversized_socketio_post_is_answered_at_once); the fuzzing stays below that.
SOCKETIO_LENGTHS = [10_000, 150_000]


def text_values(huge_lengths) -> st.SearchStrategy:
    return st.one_of(
        st.text(max_size=40),
        st.sampled_from(NASTY_STRINGS),
        st.builds(lambda n, ch: ch * n, st.sampled_from(huge_lengths), st.sampled_from(["x", "é", "😀", "\0"])),
    )


def any_json(texts: st.SearchStrategy) -> st.SearchStrategy:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                        st.floats(allow_nan=False, allow_infinity=False), texts)
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                        max_leaves=8)


texts = text_values(HUGE_LENGTHS)
json_values = any_json(texts)
small_texts = text_values(SOCKETIO_LENGTHS)
small_json_values = any_json(small_texts)


def dumps(value: Any, ascii_only: bool) -> bytes:
    """JSON as a client writes it: \\u-escaped, or as raw UTF-8 (where a lone surrogate makes it invalid UTF-8)."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


def encoded(values: st.SearchStrategy) -> st.SearchStrategy:
    return st.builds(dumps, values, st.booleans())


CONTENT_TYPES = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", "",
                                 "application/json; charset=utf-16", "multipart/form-data; boundary=x",
                                 "application/xml"])
# What an HTTP client can send as a header value (printable ASCII, no surrounding spaces).
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(str.strip)

# --- REST -------------------------------------------------------------------------------------------------

def rest_bodies(texts: st.SearchStrategy) -> st.SearchStrategy:
    values = any_json(texts)
    fields = st.fixed_dictionaries({}, optional={
        "sender": st.one_of(texts, values), "message": st.one_of(texts, values),
        "metadata": values, "input_channel": values, "customData": values,
    })
    return st.one_of(st.binary(max_size=300), encoded(values), encoded(fields),
                     encoded(st.fixed_dictionaries({"sender": texts, "message": texts})))


# The real server gets messages of at most 8,000 characters: longer ones take the NLU minutes
# (test_end_to_end.py, test_message_length_costs_the_nlu_quadratic_time).
REAL_SERVER_LENGTHS = [2_000, 8_000]


@st.composite
def rest_requests(draw, huge_lengths=tuple(HUGE_LENGTHS)) -> Tuple[str, bytes, Dict[str, str]]:
    """(query string, body, headers) of one POST to /webhooks/rest/webhook."""
    headers = {"Content-Type": draw(CONTENT_TYPES)}
    if draw(st.booleans()):
        headers["X-Forwarded-For"] = draw(st.one_of(HEADER_TEXT, st.sampled_from(["1.2.3.4", "::1, 10.0.0.1",
                                                                                   "999.1.1.1", "[::1]:80", ","])))
    query = draw(st.sampled_from(["", "?stream=true", "?stream=false", "?stream=maybe", "?stream=%00"]))
    return query, draw(rest_bodies(text_values(list(huge_lengths)))), headers


# --- socket.io (engine.io long-polling, the web chat's transport) -----------------------------------------

EVENTS = st.one_of(st.sampled_from(["user_uttered", "session_request", "bot_uttered", "message", "connect",
                                    "disconnect", "session_confirm"]), st.text(max_size=15))
ENGINEIO_MAX_BYTES = 1_000_000


def fits(packet: bytes) -> bool:
    return len(packet) < ENGINEIO_MAX_BYTES


socketio_packets = st.one_of(
    st.builds(lambda event, data: b"42" + dumps([event, data], True), EVENTS, small_json_values),
    st.builds(lambda data: b"42" + dumps(["user_uttered", data], True),
              st.fixed_dictionaries({}, optional={"message": st.one_of(small_texts, small_json_values),
                                                  "session_id": small_json_values, "customData": small_json_values,
                                                  "metadata": small_json_values})),
    st.builds(lambda data: b"42" + dumps(["session_request", data], True), small_json_values),
    st.builds(lambda prefix, body: prefix + body, st.sampled_from([b"0", b"1", b"2", b"3", b"4", b"40", b"41", b"43",
                                                                   b"44", b"45", b"46", b"6", b""]),
              st.binary(max_size=80)),
).filter(fits).filter(lambda packet: packet[:1] not in (b"0", b"1"))  # engine.io OPEN and CLOSE from the client:
# known problems (test_channel_fuzz.py, the strict xfails at the end), left out so that the rest is fuzzed


@st.composite
def polling_requests(draw) -> Dict[str, Any]:
    """One exchange with engine.io: handshake parameters, then packets POSTed in that session."""
    return {
        "eio": draw(st.sampled_from(["4", "4", "4", "3", "5", "x", ""])),
        "transport": draw(st.sampled_from(["polling", "polling", "websocket", "flashsocket", ""])),
        "sid": draw(st.sampled_from(["own", "own", "own", "forged", "none"])),
        "packets": draw(st.lists(socketio_packets, min_size=1, max_size=3)),
        "session_request_first": draw(st.booleans()),
        # a user_uttered for the session this connection joined (read back from its poll): reaches the agent
        "in_session": draw(st.one_of(st.none(), st.fixed_dictionaries({"message": st.one_of(small_texts,
                                                                                            small_json_values)},
                                                                       optional={"metadata": small_json_values,
                                                                                 "customData": small_json_values})
                                                  .filter(lambda data: fits(dumps(data, True))))),
        "content_type": draw(st.sampled_from(["text/plain;charset=UTF-8", "application/octet-stream", ""])),
    }


# --- Slack ------------------------------------------------------------------------------------------------

# Slack sends events of a few kilobytes: its fuzzing stays at socket.io's sizes.
slack_events = st.fixed_dictionaries({"type": st.just("event_callback")}, optional={
    "event_id": small_json_values, "authed_users": small_json_values, "authorizations": small_json_values,
    "event": st.one_of(small_json_values, st.fixed_dictionaries({}, optional={
        "type": st.one_of(st.sampled_from(["message", "app_mention"]), small_json_values),
        "text": st.one_of(small_texts, small_json_values), "user": small_json_values, "channel": small_json_values,
        "channel_type": st.one_of(st.just("im"), small_json_values), "ts": small_json_values,
        "thread_ts": small_json_values, "bot_id": small_json_values})),
})
slack_clicks = st.fixed_dictionaries({"type": st.just("block_actions")}, optional={
    "trigger_id": small_json_values, "user": small_json_values, "channel": small_json_values,
    "message": small_json_values,
    "actions": st.one_of(small_json_values, st.lists(st.fixed_dictionaries({}, optional={
        "type": st.one_of(st.sampled_from(["button", "select", "static_select", "overflow", "datepicker"]),
                          small_json_values),
        "value": small_json_values, "selected_option": small_json_values, "selected_options": small_json_values,
        "action_ts": small_json_values}), max_size=2)),
})
url_verifications = st.fixed_dictionaries({"type": st.just("url_verification"), "challenge": small_json_values})
slack_documents = st.one_of(small_json_values, slack_events, slack_clicks, url_verifications)


@st.composite
def signed_slack_requests(draw, secret: str) -> Tuple[bytes, Dict[str, str]]:
    """A request signed with the app's secret (only Slack can send these) whose content is anything at all."""
    document = draw(slack_documents)
    if draw(st.booleans()):
        from urllib.parse import urlencode

        body = urlencode({"payload": json.dumps(document)}).encode()
        content_type = "application/x-www-form-urlencoded"
    else:
        body, content_type = dumps(document, draw(st.booleans())), "application/json"
    content_type = draw(st.one_of(st.just(content_type), CONTENT_TYPES))
    headers = {"Content-Type": content_type, **sign(secret, body)}
    if draw(st.booleans()):
        headers["X-Slack-Retry-Num"] = draw(HEADER_TEXT)
        headers["X-Slack-Retry-Reason"] = draw(st.one_of(HEADER_TEXT, st.just("http_timeout")))
    return body, headers


@st.composite
def unsigned_slack_requests(draw, secret: str) -> Tuple[bytes, Dict[str, str]]:
    """A request without a valid signature: none, forged, for another body, stale, from the future, or garbled."""
    body = draw(st.one_of(encoded(slack_documents), st.binary(max_size=200)))
    now = int(time.time())
    how = draw(st.sampled_from(["none", "random", "other body", "other secret", "stale", "future", "bad timestamp",
                                "v1 scheme", "timestamp only", "signature only"]))
    headers = {"Content-Type": draw(CONTENT_TYPES)}
    if how == "random":
        headers.update({"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": draw(HEADER_TEXT)})
    elif how == "other body":
        headers.update(sign(secret, body + b" "))
    elif how == "other secret":
        headers.update(sign(secret + "x", body))
    elif how in ("stale", "future"):
        offset = draw(st.integers(min_value=301, max_value=10**12))
        headers.update(sign(secret, body, timestamp=now - offset if how == "stale" else now + offset))
    elif how == "bad timestamp":
        stamp = draw(st.one_of(HEADER_TEXT, st.sampled_from(["", "nan", "1e3", " 1 ", "-0", "0x10", str(10**40)])))
        digest = sign(secret, body)["X-Slack-Signature"]
        headers.update({"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": digest})
    elif how == "v1 scheme":
        signed = sign(secret, body)
        headers.update({**signed, "X-Slack-Signature": signed["X-Slack-Signature"].replace("v0=", "v1=")})
    elif how == "timestamp only":
        headers["X-Slack-Request-Timestamp"] = str(now)
    elif how == "signature only":
        headers["X-Slack-Signature"] = sign(secret, body)["X-Slack-Signature"]
    return body, headers
