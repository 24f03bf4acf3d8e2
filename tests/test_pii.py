"""Masking personal data (shop/pii.py): what is masked, what must stay readable (order numbers, dates, tracking
numbers, the bot's own wording), events masked recursively, and log records masked in our processes and in Rasa's."""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections import defaultdict

import pytest
import yaml

from actions.messages import catalogue
from shop.order_numbers import OrderNumberFormat
from shop.pii import (
    ADDRESS_MASK,
    EMAIL,
    EMAIL_MASK,
    PHONE_MASK,
    MaskingFilter,
    install_log_masking,
    mask_event,
    mask_log_text,
    mask_text,
    pseudonym,
)
from shop.settings import PROJECT_ROOT

EMAILS = ["alice@example.com", "Alice.M+x@Example.co.uk", "o.brien_99@mail.example.ie", "jörg@straße.de",
          "alice (at) example (dot) com", "bob [at] example [dot] org", "carol at example dot com"]
PHONES = ["+49 151 12345678", "+1 (555) 123-4567", "+44 20 7946 0958", "+33 1 23 45 67 89", "+39 06 1234 5678",
          "+447700900123", "0049 30 1234567", "(555) 123-4567", "555-123-4567", "555.123.4567", "1-800-555-1234",
          "030 1234567", "0151-12345678", "0151/1234567", "(030) 123 4567", "01 23 45 67 89", "07700 900123",
          "07700900123"]
ADDRESSES = ["12 Main Street", "221B Baker St.", "1600 Pennsylvania Avenue", "5 Elm Rd", "42 Oak Lane",
             "10 Downing St", "7 Park Place", "3 Abbey Way", "12 rue de la Paix", "5, avenue Foch",
             "8 boulevard Haussmann",
             "Hauptstraße 5", "Hauptstrasse 12a", "Goethestr. 4", "Lindenweg 7a", "Berliner Straße 12", "Am Markt 3",
             "Via Roma 10", "Piazza Navona 3", "Corso Italia 12", "Calle de Alcalá 45", "calle mayor 5",
             "Paseo del Prado 8", "Avenida da Liberdade 110", "Kerkstraat 12", "Stationslaan 5"]
KEPT = [
    "order 10002 is on its way", "where is order #10002?", "orders 10002, 10003 and 10004", "10002/10003",
    "return R-12", "tracking number JD014600010002", "Ordered on 2024-11-01, shipped on 2024-11-03",
    "on 01.02.2024 at 10:30", "timestamp 1700000000.123", "confidence 0.123456789", "Rasa 3.6.21",
    "peer 192.168.100.200:5055", "uuid 123e4567-e89b-12d3-a456-426614174000", "2 days in a row",
    "refunds take 5 to 10 business days", "I bought 2 mugs via DHL", "it costs 45.50 euros", "we have 3 ways",
    "sender spread-01512345", "00012345678", "session e3b0c44298fc1c149afbf4c8996fb924", "I live on 5th Avenue",
    "return 2 items by next week", "amqp://guest@127.0.0.1:5672/",
]


@pytest.mark.parametrize("value", EMAILS)
def test_emails_are_masked(value):
    masked = mask_text(f"my email is {value}, thanks")
    assert masked == f"my email is {EMAIL_MASK}, thanks"


@pytest.mark.parametrize("value", PHONES)
def test_phone_numbers_are_masked(value):
    masked = mask_text(f"call me on {value} please")
    assert masked == f"call me on {PHONE_MASK} please"


@pytest.mark.parametrize("value", ADDRESSES)
def test_street_addresses_are_masked(value):
    masked = mask_text(f"send it to {value}, thanks")
    assert masked == f"send it to {ADDRESS_MASK}, thanks"


@pytest.mark.parametrize("text", KEPT)
def test_what_is_not_personal_data_stays_readable(text):
    assert mask_text(text) == text


@pytest.mark.parametrize("pattern, example, typed", [
    (r"\d{5,8}", "10001", "10001234"),
    (r"0\d{9}", "0123456789", "0123456789"),  # would look like a phone number in another shop
    (r"0\d{9}", "0123456789", "012 345 6789"),
    (r"\d{3}-\d{7}-\d{7}", "113-4567891-2345678", "113-4567891-2345678"),
    (r"NW-\d{4}-\d{5}", "NW-2024-00017", "nw 2024 00017"),
    (r"\+?\d{11}", "49151123456", "+49151123456"),
])
def test_the_shops_order_numbers_are_never_phone_numbers(pattern, example, typed):
    numbers = OrderNumberFormat(pattern=pattern, example=example)
    assert mask_text(f"my order {typed} please", numbers) == f"my order {typed} please"
    assert mask_text("call 0151 12345678", numbers) == f"call {PHONE_MASK}"


def test_several_kinds_in_one_message():
    text = ("Order 10002 shipped to 12 Main Street, Springfield, IL 62704; reach me at +1 217 555 0199 or "
            "alice@example.com")
    assert mask_text(text) == (f"Order 10002 shipped to {ADDRESS_MASK}, Springfield, IL 62704; reach me at "
                               f"{PHONE_MASK} or {EMAIL_MASK}")


def _sample(template: str) -> str:
    """A message of the bot with every placeholder filled by a realistic value (order numbers, dates, amounts)."""
    values = defaultdict(lambda: "10002", order_id="10002", ordered_on="2024-11-01", shipped_on="2024-11-03",
                         delivery="estimated delivery 2024-11-06", tracking_number="JD014600010002", carrier="DHL",
                         amount="45.50", days="30", return_id="R-2", retry_after="42", items="Desk lamp x 2")
    return template.format_map(values)


def test_the_bots_own_messages_are_never_masked():
    """The support team reads events and logs: masking must not change what the bot said about orders."""
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    texts = [entry["text"] for entry in catalogue().values()]
    texts += [variant["text"] for variants in domain["responses"].values() for variant in variants if "text" in variant]
    changed = [text for text in map(_sample, texts) if mask_text(text) != EMAIL.sub(EMAIL_MASK, text)]
    assert changed == []  # only the example address ("e.g. name@example.com") is masked


def test_events_are_masked_recursively_and_not_changed_in_place():
    event = {
        "event": "user", "sender_id": "web-7", "timestamp": 1700000000.5, "text": "I'm alice@example.com",
        "parse_data": {"intent": {"name": "inform", "confidence": 0.98},
                       "entities": [{"entity": "email", "value": "alice@example.com", "start": 4, "end": 21}],
                       "text": "I'm alice@example.com"},
        "metadata": {"client_address": "203.0.113.7", "profile": {"phone": "+49 151 12345678",
                                                                  "lines": ["Hauptstraße 5", 3]}},
    }
    original = copy.deepcopy(event)
    masked = mask_event(event)
    assert event == original
    assert masked["text"] == masked["parse_data"]["text"] == f"I'm {EMAIL_MASK}"
    assert masked["parse_data"]["entities"][0] == {"entity": "email", "value": EMAIL_MASK, "start": 4, "end": 21}
    assert masked["metadata"] == {"client_address": "203.0.113.7",
                                  "profile": {"phone": PHONE_MASK, "lines": [ADDRESS_MASK, 3]}}
    assert masked["parse_data"]["intent"] == {"name": "inform", "confidence": 0.98}
    assert masked["sender_id"] == "web-7" and masked["timestamp"] == 1700000000.5
    slot = mask_event({"event": "slot", "name": "order_email", "value": "bob@example.com", "sender_id": "x"})
    assert slot["value"] == EMAIL_MASK and slot["name"] == "order_email"


def test_a_sender_id_that_is_personal_data_becomes_a_stable_pseudonym():
    first = mask_event({"event": "user", "sender_id": "alice@example.com", "text": "hi"})
    second = mask_event({"event": "bot", "sender_id": "alice@example.com", "text": "hello"})
    assert first["sender_id"] == second["sender_id"] == pseudonym("alice@example.com")
    assert "alice" not in first["sender_id"]
    assert pseudonym("bob@example.com") != first["sender_id"]


def _capture(logger_name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s %(request)s",
                                           defaults={"request": ""}))
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, stream


def test_log_records_are_masked_at_every_level_with_their_arguments_and_tracebacks():
    logger, stream = _capture("test_pii.any_logger")
    install_log_masking()  # as in Rasa and the action server: logging is set up, then the project is imported
    logger.debug("Received user message '%s' with slots %s", "I'm at 12 Main Street",
                 {"order_email": "bob@example.com"})
    logger.info("call %s", "+49 151 12345678")
    try:
        raise KeyError("carol@example.com")
    except KeyError:
        logger.exception("failed for %(who)s", {"who": "dan@example.com"})
    logger.warning("access", extra={"request": "GET /conversations/erin@example.com/tracker"})
    logger.error(json.dumps({"event": "rest.message.received.failure", "text": "Ich wohne Hauptstraße 5"}))
    output = stream.getvalue()
    for secret in ("12 Main Street", "bob@example.com", "+49 151", "carol@", "dan@", "erin@", "Hauptstra"):
        assert secret not in output, output
    assert output.count(EMAIL_MASK) >= 4 and PHONE_MASK in output and output.count(ADDRESS_MASK) == 2


def test_records_made_elsewhere_are_masked_by_the_filter():
    """A record rebuilt from a dict (a queue or socket handler) skips the record factory; the filter catches it."""
    record = logging.makeLogRecord({"msg": "mail %s", "args": ("frank@example.com",), "levelno": logging.INFO,
                                    "levelname": "INFO", "client": "+44 20 7946 0958"})
    assert MaskingFilter().filter(record)
    assert record.getMessage() == f"mail {EMAIL_MASK}" and record.client == PHONE_MASK


def test_json_log_lines_are_masked_as_read():
    line = json.dumps({"text": "café at Lindenstraße 3, ring 0151 1234567"})
    assert "Lindenstra" not in mask_log_text(line) and PHONE_MASK in mask_log_text(line)
    assert mask_log_text(json.dumps({"text": "café crème"})) == json.dumps({"text": "café crème"})


def test_rasas_own_logs_are_masked_once_it_loads_our_channels():
    """A process set up as `rasa run` sets up logging (structlog rendering JSON into stdlib logging), then loads the
    channels of credentials.yml: what Rasa logs about a message afterwards is masked."""
    script = textwrap.dedent("""
        import logging
        import structlog
        from rasa.utils.log_utils import configure_structlog
        configure_structlog(logging.DEBUG)
        import channels.rest  # noqa: F401  (what credentials.yml makes Rasa import)
        structlog.get_logger().error("rest.message.received.failure", text="I'm alice@example.com, Hauptstraße 5")
        logging.getLogger("rasa.core.processor").debug("Received user message '%s'", "call +49 151 12345678")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "rest.message.received.failure" in output and "Received user message" in output
    assert "alice@" not in output and "Hauptstra" not in output and "151 1234" not in output
    assert EMAIL_MASK in output and ADDRESS_MASK in output and PHONE_MASK in output


def test_the_action_servers_logs_are_masked_once_it_loads_the_actions():
    """`rasa run actions` sets up logging, then imports the actions package (which imports the shop package)."""
    script = textwrap.dedent("""
        import logging
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s %(message)s")
        from rasa_sdk.executor import ActionExecutor
        ActionExecutor().register_package("actions")
        logging.getLogger("rasa_sdk.endpoint").debug("Received request %s", {"tracker": {"slots": {
            "order_email": "alice@example.com"}, "latest_message": {"text": "I moved to 12 Main Street"}}})
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=PROJECT_ROOT, env={**os.environ, "GENERATOR_PRELOAD": "0"})
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "Received request" in output
    assert "alice@" not in output and "Main Street" not in output
    assert EMAIL_MASK in output and ADDRESS_MASK in output
