"""When a text, an event or a conversation belongs to a customer.

Why a regular expression after the SQL search: SQL `LIKE` finds candidates fast on both databases, but
"bob@example.com" is also inside "jimbob@example.com" and "bob@example.com.au", which belong to other people. Each
candidate is confirmed here on the parsed event, with the address standing alone and in any letter case.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, List, Optional, Set

from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.expression import or_

from shop.orders import normalise_email

VERIFIED_ORDER_SLOT = "verified_order_id"  # set by actions/verification.py once order number and email match
LIKE_ESCAPE = "\\"


def valid_email(text: str) -> Optional[str]:
    """The email as the shop stores and compares it (lower case), or None when it is not an email address."""
    return normalise_email(text)


def escape_like(text: str) -> str:
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


def contains_any(column: ColumnElement, needles: Iterable[str]) -> ColumnElement:
    """`column` contains one of `needles`, in any letter case (ILIKE on PostgreSQL, lower() LIKE on SQLite)."""
    return or_(*(column.ilike(f"%{escape_like(needle)}%", escape=LIKE_ESCAPE) for needle in needles))


def parse_event(data: Optional[str]) -> Any:
    """A stored event's JSON; the raw text when it is not JSON (still searched, still exported)."""
    try:
        return json.loads(data) if data else {}
    except ValueError:
        return data


class EmailMatcher:
    """Finds one email address in texts and events, case-insensitively, only where it stands alone."""

    def __init__(self, email: str) -> None:
        self.email = email.strip().lower()
        self._pattern = re.compile(r"(?<![\w.%+-])" + re.escape(self.email) + r"(?![\w-]|\.[\w-])", re.IGNORECASE)

    @property
    def needles(self) -> List[str]:
        """What the SQL search looks for: the address, and the address as json.dumps writes it (non-ASCII)."""
        escaped = json.dumps(self.email)[1:-1]
        return [self.email] if escaped == self.email else [self.email, escaped]

    def in_text(self, text: Optional[str]) -> bool:
        return bool(text) and self._pattern.search(text) is not None

    def in_value(self, value: Any) -> bool:
        """Anywhere in a parsed event: every string, however deeply nested (texts, slots, entities, metadata)."""
        if isinstance(value, str):
            return self.in_text(value)
        if isinstance(value, dict):
            return any(self.in_value(item) for item in value.values())
        if isinstance(value, list | tuple):
            return any(self.in_value(item) for item in value)
        return False

    def is_email(self, text: Optional[str]) -> bool:
        """A conversation id that is the address itself (a channel that uses emails as sender ids)."""
        return (text or "").strip().lower() == self.email


def verified_order(event: Any) -> Optional[str]:
    """The order number a slot event marks as verified (upper case, as order numbers are stored), else None."""
    if not isinstance(event, dict) or event.get("event") != "slot" or event.get("name") != VERIFIED_ORDER_SLOT:
        return None
    value = event.get("value")
    return str(value).strip().upper() if value not in (None, "") else None


def verifies_one_of(event: Any, order_ids: Set[str]) -> Optional[str]:
    """The order of `order_ids` (upper case) this event verified, if any."""
    order = verified_order(event)
    return order if order is not None and order in order_ids else None
