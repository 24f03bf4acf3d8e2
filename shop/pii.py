"""Masking personal data (email addresses, phone numbers, street addresses) in text that leaves the conversation:
the events published to the event broker and stored by its consumer, and every log record of our processes.

Why here and not in Rasa: Rasa logs whole messages and slot values at debug level and publishes every event as it
is; patching it would break on the next upgrade. Instead the project's own broker (shop/event_broker.py) and consumer
(shop/event_consumer.py) pass each event through `mask_event`, and `install_log_masking` (called when the `shop`
package is imported, which Rasa, the action server and every CLI of the project do) masks each log record when it is
created, whatever logger, handler or level it goes to.

What is masked keeps a stable placeholder, so a reader still sees what kind of thing was said: `[email]`, `[phone]`,
`[address]`. Order numbers in the shop's own format (shop.yml `order_numbers`) are never taken for phone numbers:
they are what the support team needs to read. Tested on many formats in tests/test_pii.py; what the patterns do not
catch is listed in docs/security.md.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from functools import lru_cache
from typing import Any, Callable, Optional

from shop.order_numbers import OrderNumberFormat, compact

EMAIL_MASK = "[email]"
PHONE_MASK = "[phone]"
ADDRESS_MASK = "[address]"

# ------------------------------------------------------------------------------------------------------------ email

EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]+@(?:[\w-]+\.)+[^\W\d_]{2,}(?![\w-])"
    # "alice (at) example (dot) com", "alice [at] example [dot] com", "alice at example dot com"
    r"|(?<![\w.+-])[\w.+-]+\s*(?:\(at\)|\[at\]|\sat\s)\s*[\w-]+(?:\s*(?:\(dot\)|\[dot\]|\sdot\s)\s*[\w-]+)*"
    r"\s*(?:\(dot\)|\[dot\]|\sdot\s)\s*[^\W\d_]{2,}\b",
    re.IGNORECASE,
)

# ------------------------------------------------------------------------------------------------------------ phone
# Three shapes, each with digit counts checked afterwards (`_is_phone`):
# - international: `+` or `00`, a country code, then digits with spaces, dashes, dots, slashes or parentheses;
# - North American: (555) 123-4567, 555-123-4567, 555.123.4567, 1-800-555-1234 (separators required: a bare
#   ten-digit number is as likely an id or a timestamp);
# - national with a trunk zero: 030 1234567, 0151-12345678, (030) 123 4567, 01 23 45 67 89, 07700900123; one kind of
#   separator throughout, so that a date and a time ("01.02.2024 10:30") never read as one number.
_NOT_BEFORE = r"(?<![\w+@/.-])(?<!\d[:,])"
_NOT_AFTER = r"(?![\w@]|[.,:/-]\d)"
PHONE = re.compile(
    _NOT_BEFORE + r"(?:"
    r"(?P<intl>(?:\+|00)[1-9](?:[ \t./-]?\(?\d\)?){6,14})"
    r"|(?P<nanp>(?:1[ .-])?(?:\([2-9]\d{2}\)[ .-]?|[2-9]\d{2}[ .-])\d{3}[ .-]\d{4})"
    r"|(?P<national>\(0[1-9]\d{0,4}\)[ \t./-]?\d{2,8}(?:[ \t./-]\d{2,6}){0,3}"
    r"|0[1-9]\d{0,4}(?P<sep>[ \t./-]?)\d{2,8}(?:(?P=sep)\d{2,6}){0,4})"
    r")" + _NOT_AFTER
)


def _is_phone(match: re.Match) -> bool:
    digits = re.sub(r"\D", "", match.group(0))
    if match.group("intl"):
        count = len(digits) - (2 if match.group(0).startswith("00") else 0)
        return 8 <= count <= 15
    if match.group("nanp"):
        return True
    first_group = re.match(r"\(?(\d+)", match.group(0)).group(1)
    return 9 <= len(digits) <= 13 and len(first_group) >= 2

# ---------------------------------------------------------------------------------------------------------- address

_NUMBER = r"\d{1,5}[A-Za-z]?(?:\s?[-/]\s?\d{1,4}[A-Za-z]?)?"
# Words that never stand between a house number and a street word, so that "order 10002 is on its way" or "2 days
# in a row" is not an address.
_STOPWORDS = (
    "a|an|the|and|or|but|is|are|was|were|be|been|it|its|it's|on|in|at|to|of|for|from|by|with|my|your|our|their|his|"
    "her|this|that|these|those|next|last|per|more|less|than|then|day|days|week|weeks|month|months|year|years|hour|"
    "hours|minute|minutes|time|times|item|items|order|orders|euro|euros|dollar|dollars|pound|pounds|percent|x"
)
_NAME = rf"(?!(?i:{_STOPWORDS})\b)[^\W\d_][\w'’.-]*"
_EN_STREET = (
    r"street|st|road|rd|avenue|ave|av|lane|ln|drive|dr|boulevard|blvd|court|ct|place|pl|way|terrace|ter|close|"
    r"crescent|cres|highway|hwy|square|sq|parkway|pkwy|circle|cir|alley|grove|gardens|walk|mews|hill"
)
# French (and English) street words that follow the number directly: "12 rue de la Paix", "5 avenue Foch".
_FR_STREET = r"rue|avenue|av\.|boulevard|bd|bld|chemin|impasse|all[ée]e|quai|cours|faubourg"
# Street words that come first, the number after: Italian, Spanish, Portuguese, Catalan; German and Dutch ones as
# separate words. The ambiguous ones ("Via", "Plaza", "Am") only with a capital letter.
_PRE_STREET_ANY_CASE = (
    r"calle|avenida|avda\.?|paseo|carrer|rua|travessa|rambla|camino|carretera|piazza|piazzale|viale|corso|vicolo|"
    r"largo|stra(?:ss|ß)e|str\.|gasse|allee|chaussee|straat|laan"
)
_PRE_STREET_CAPITALISED = r"Via|Plaza|Platz|Weg|Am|Im|An\s+der|Auf\s+dem|C/"
_CONNECTOR = r"(?:de|del|della|delle|dei|degli|di|da|dos|das|do|la|las|los|el|der|dem|den|des|du|van|von|am|an)"
_CAPITALISED_NAME = r"[^\W\d_a-zß-ÿ][\w'’.-]*"
# Compound German and Dutch street names: "Hauptstraße 5", "Goethestr. 4", "Lindenweg 7a", "Kerkstraat 12".
_COMPOUND_SUFFIX = r"stra(?:ss|ß)e|str\.|weg|allee|gasse|platz|damm|ufer|straat|laan|plein|gracht|kade|steeg|dreef"

ADDRESS = re.compile(
    r"(?:"
    # 12 Main Street, 221B Baker St., 1600 Pennsylvania Avenue
    rf"(?<![\w.,/-]){_NUMBER},?\s+(?:{_NAME}\s+){{1,3}}(?i:{_EN_STREET})\b\.?"
    # 12 rue de la Paix, 5, avenue Foch
    rf"|(?<![\w.,/-]){_NUMBER},?\s+(?i:{_FR_STREET})\s+(?:{_CONNECTOR}\s+|[dl][’']\s*)*{_NAME}"
    # Via Roma 10, Calle de Alcalá 45, Paseo del Prado 8, Berliner Straße 12, Am Weg 3
    rf"|(?:\b{_CAPITALISED_NAME}\s+)?\b(?i:{_PRE_STREET_ANY_CASE})(?:\s+(?:{_CONNECTOR}\s+)*{_NAME}){{0,3}},?\s+"
    rf"{_NUMBER}(?![\w])"
    rf"|(?:\b{_CAPITALISED_NAME}\s+)?\b(?:{_PRE_STREET_CAPITALISED})(?:\s+(?:{_CONNECTOR}\s+)*{_CAPITALISED_NAME}){{0,3}}"
    rf",?\s+{_NUMBER}(?![\w])"
    # Hauptstraße 5, Goethestr. 4, Lindenweg 7a
    rf"|\b[^\W\d_][\w-]*?(?i:{_COMPOUND_SUFFIX}),?\s*{_NUMBER}(?![\w])"
    r")"
)


# --------------------------------------------------------------------------------------------------------- masking

@lru_cache(maxsize=1)
def _shop_order_numbers() -> OrderNumberFormat:
    """The shop's order-number format; the default one if shop.yml cannot be read (masking must never fail)."""
    try:
        from shop.settings import get_settings

        return get_settings().order_numbers
    except Exception:  # noqa: BLE001 - a broken shop.yml is reported by whoever loads it; masking goes on
        return OrderNumberFormat()


def _is_order_number(text: str, order_numbers: OrderNumberFormat) -> bool:
    candidate = re.sub(r"\s+", " ", text.strip("() ")).upper()
    return order_numbers.accepts(candidate) or order_numbers.accepts(compact(candidate)) \
        or order_numbers.accepts(order_numbers.canonical(candidate))


_AT_WORD = re.compile(r"\bat\b", re.IGNORECASE)
_DIGIT = re.compile(r"\d")
_SPACE = re.compile(r"\s")


def mask_text(text: str, order_numbers: Optional[OrderNumberFormat] = None) -> str:
    """`text` with every email address, phone number and street address replaced by its placeholder."""
    if not text or not isinstance(text, str):
        return text
    if "@" in text or _AT_WORD.search(text):
        text = EMAIL.sub(EMAIL_MASK, text)
    if not _DIGIT.search(text):
        return text  # phone numbers and street addresses have digits; most of an event's strings do not
    numbers = order_numbers or _shop_order_numbers()

    def phone(match: re.Match) -> str:
        if not _is_phone(match) or _is_order_number(match.group(0), numbers):
            return match.group(0)
        return PHONE_MASK

    if len(_DIGIT.findall(text)) >= 8:  # the shortest phone number masked has 8 digits
        text = PHONE.sub(phone, text)
    return ADDRESS.sub(ADDRESS_MASK, text) if _SPACE.search(text) else text  # a street and its number: 2 words


def mask_value(value: Any, order_numbers: Optional[OrderNumberFormat] = None) -> Any:
    """A copy of `value` (JSON-like: dicts, lists, strings, numbers) with every string in it masked, keys included."""
    if isinstance(value, str):
        return mask_text(value, order_numbers)
    if isinstance(value, dict):
        return {mask_value(key, order_numbers): mask_value(item, order_numbers) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(item, order_numbers) for item in value]
    return value


def pseudonym(sender_id: str) -> str:
    """A conversation id that is itself personal data (an email as the REST `sender`), as a stable stand-in: the
    events of one conversation still share it, the address is not in it."""
    return f"masked-{hashlib.sha256(sender_id.encode('utf-8')).hexdigest()[:20]}"


def mask_event(event: Any, order_numbers: Optional[OrderNumberFormat] = None) -> Any:
    """A Rasa event as published (dict) with every text field masked, recursively: user and bot text, parse data,
    entity values, slot values, metadata. A `sender_id` holding personal data becomes a pseudonym."""
    masked = mask_value(event, order_numbers)
    if isinstance(event, dict) and isinstance(event.get("sender_id"), str):
        sender = event["sender_id"]
        masked["sender_id"] = sender if masked["sender_id"] == sender else pseudonym(sender)
    return masked


# --------------------------------------------------------------------------------------------------------- logging

_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_MASKED_FLAG = "_shop_pii_masked"


_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def mask_log_text(text: str) -> str:
    """mask_text for log lines, which may be JSON (Rasa's structlog renders `Hauptstraße` as `Hauptstra\\u00dfe`):
    masked as the reader will read it when that finds more."""
    masked = mask_text(text)
    if "\\u" not in text:
        return masked

    def character(match: re.Match) -> str:
        code = int(match.group(1), 16)
        return match.group(0) if 0xD800 <= code <= 0xDFFF or code < 0x80 else chr(code)

    def placeholders(value: str) -> int:
        return sum(value.count(mask) for mask in (EMAIL_MASK, PHONE_MASK, ADDRESS_MASK))

    readable = _JSON_ESCAPE.sub(character, text)
    masked_readable = mask_text(readable)
    return masked_readable if placeholders(masked_readable) > placeholders(masked) else masked


def _mask_message(record: logging.LogRecord) -> None:
    """Format the record's message now, masked, with its traceback and stack."""
    if getattr(record, _MASKED_FLAG, None) is record.msg and not record.args:
        return  # masked already, and not changed since (logging.makeLogRecord fills a record after it is made)
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - bad arguments: keep what can be shown, masked
        message = f"{record.msg} (log arguments could not be formatted: {record.args!r})"
    record.msg, record.args = mask_log_text(str(message)), None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask_log_text(record.exc_text)
    if record.stack_info:
        record.stack_info = mask_log_text(record.stack_info)
    setattr(record, _MASKED_FLAG, record.msg)


class MaskingFilter(logging.Filter):
    """Masks a log record in place (message, arguments, traceback, stack, `extra` fields); never drops one.
    Installed on handlers for records that were not created by this process's logging (a queue, a socket)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _mask_message(record)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRIBUTES and name != _MASKED_FLAG and isinstance(value, str):
                setattr(record, name, mask_log_text(value))
        return True


_install_lock = threading.Lock()
_installed: Optional[Callable[..., logging.LogRecord]] = None


def install_log_masking() -> None:
    """Mask every log record of this process when it is created (any logger, any handler, any level), and put a
    MaskingFilter on the handlers configured so far. Idempotent."""
    global _installed
    with _install_lock:
        if _installed is None or logging.getLogRecordFactory() is not _installed:
            previous = logging.getLogRecordFactory()

            def masking_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                _mask_message(record)
                return record

            logging.setLogRecordFactory(masking_factory)
            _installed = masking_factory
        masking_filter = MaskingFilter()
        loggers = [logging.getLogger()] + [logger for logger in logging.Logger.manager.loggerDict.values()
                                           if isinstance(logger, logging.Logger)]
        for logger in loggers:
            for handler in logger.handlers:
                if not any(isinstance(existing, MaskingFilter) for existing in handler.filters):
                    handler.addFilter(masking_filter)
