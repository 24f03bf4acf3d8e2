"""A customer's copy of their data: one JSON file, readable by a person, complete enough for a machine.

Why these choices: the file is what a customer receives when they ask what the shop holds about them, so every
section says what it is, conversations come with a plain transcript before their raw events, and dates are ISO
text. It holds personal data, so it is written readable by its owner only (mode 600) and atomically (a half-written
export is never left behind).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Dict, List

from shop.privacy.customer import CustomerData

SECTIONS = {
    "customer_records": "The customer record: name and email.",
    "orders": "Orders, with their items, refunds and returns.",
    "emails": "Emails the shop sent or queued to this address.",
    "handoff_tickets": "Conversations handed to a person, with the reason and the transcript.",
    "satisfaction_feedback": "Answers to the satisfaction question at the end of a conversation.",
    "message_sentiment": "How each message felt (negative, neutral, positive), as the assistant judged it.",
    "conversations": "Conversations with the assistant: why each is yours, the transcript and every stored event.",
}


def _public(row: Dict[str, Any]) -> Dict[str, Any]:
    """A row without the internal keys (database ids) used for erasure."""
    return {key: value for key, value in row.items() if not key.startswith("_")}


def _transcript(events: List[Dict[str, Any]]) -> List[str]:
    lines = []
    for item in events:
        event = item["event"]
        if isinstance(event, dict) and event.get("event") in ("user", "bot") and event.get("text"):
            speaker = "customer" if event["event"] == "user" else "assistant"
            lines.append(f"{item['time'] or ''} {speaker}: {event['text']}".strip())
    return lines


def export_document(found: CustomerData, shop_name: str, now: datetime | None = None) -> Dict[str, Any]:
    """Everything found, in sections, with a summary of how much each holds."""
    now = now or datetime.now(UTC)
    conversations = []
    for sender_id in sorted(found.conversations):
        conversation = found.conversations[sender_id]
        events = conversation.tracker_events or conversation.stream_events
        conversations.append({
            "conversation_id": sender_id,
            "why_it_is_yours": sorted(conversation.reasons),
            "transcript": _transcript(events),
            "events": [_public(event) for event in conversation.tracker_events],
            "event_stream_copy": [_public(event) for event in conversation.stream_events],
        })
    document: Dict[str, Any] = {
        "about": f"Personal data held by {shop_name} about {found.email}, exported "
                 f"{now.astimezone(UTC).isoformat(timespec='seconds')}.",
        "sections": SECTIONS,
        "summary": {
            "customer_records": len(found.customers),
            "orders": len(found.orders),
            "returns": len(found.returns),
            "emails": len(found.emails),
            "handoff_tickets": len(found.handoff_tickets),
            "satisfaction_feedback": len(found.satisfaction_feedback),
            "message_sentiment": len(found.sentiment),
            "conversations": len(found.conversations),
            "conversation_events": found.tracker_event_count,
            "event_stream_copies": found.stream_event_count,
        },
        "customer_records": found.customers,
        "orders": found.orders,
        "emails": [_public(row) for row in found.emails],
        "handoff_tickets": [_public(row) for row in found.handoff_tickets],
        "satisfaction_feedback": [_public(row) for row in found.satisfaction_feedback],
        "message_sentiment": [_public(row) for row in found.sentiment],
        "conversations": conversations,
    }
    return document


def write_export(document: Dict[str, Any], out: str) -> str:
    """Write to `out` ('-': standard output); returns where it went. OSError when the file cannot be written."""
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"
    if out == "-":
        sys.stdout.write(text)
        return "standard output"
    path = Path(out).expanduser()
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return str(path)
