"""Handing a conversation to a person: a ticket with the reason and what was said."""

from __future__ import annotations

from typing import Iterable, Tuple

from sqlalchemy.orm import Session

from shop.models import HandoffTicket

MAX_MESSAGE_CHARS = 500


def format_transcript(messages: Iterable[Tuple[str, str]]) -> str:
    """'customer: ...' / 'bot: ...' lines, each cut to a readable length."""
    lines = []
    for speaker, text in messages:
        text = " ".join((text or "").split())
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[: MAX_MESSAGE_CHARS - 1] + "…"
        lines.append(f"{speaker}: {text}")
    return "\n".join(lines)


def create_ticket(session: Session, conversation_id: str, reason: str, transcript: str) -> HandoffTicket:
    ticket = HandoffTicket(conversation_id=conversation_id[:255], reason=reason[:200], transcript=transcript)
    session.add(ticket)
    session.flush()
    return ticket
