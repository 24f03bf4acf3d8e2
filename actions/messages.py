"""The action server's message catalogue (actions/responses.yml).

Why not domain responses: Rasa's validator cannot see responses that only custom actions use and
reports each as unused; keeping them here keeps `rasa data validate` clean and meaningful.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml
from rasa_sdk.executor import CollectingDispatcher

from shop.settings import get_settings

CATALOGUE_FILE = Path(__file__).with_name("responses.yml")
MESSAGE_NAME = "message_name"  # bot event metadata: which catalogue message this was (Rasa's responses: utter_action)


@lru_cache(maxsize=1)
def catalogue() -> Dict[str, Dict[str, Any]]:
    entries = yaml.safe_load(CATALOGUE_FILE.read_text(encoding="utf-8")) or {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            raise ValueError(f"{CATALOGUE_FILE}: message {name!r} needs a 'text'")
    return entries


def shop_values() -> Dict[str, str]:
    """Placeholders every message may use, from shop.yml: {shop_name}, {order_number_example}."""
    settings = get_settings()
    return {"shop_name": settings.shop_name, "order_number_example": settings.order_numbers.example}


def render(name: str, **values: Any) -> str:
    """The text of message `name` with its {placeholders} filled; a missing value is a KeyError."""
    return catalogue()[name]["text"].format(**{**shop_values(), **values})


def say(
    dispatcher: CollectingDispatcher, name: str, buttons: Optional[List[Dict[str, str]]] = None, **values: Any
) -> None:
    """Send message `name`; `buttons` replaces the catalogue's buttons when given. The name goes into the bot
    event's metadata (kept in the tracker, never shown), so analytics can count what the bot said by name."""
    entry = catalogue()[name]
    dispatcher.utter_message(
        text=render(name, **values), buttons=entry.get("buttons", []) if buttons is None else buttons,
        **{MESSAGE_NAME: name},
    )


def checked(dispatcher: CollectingDispatcher, slot: str, value: Any, complaint: str) -> Dict[str, Any]:
    """A form validation result: {slot: value}; when value is None, say `complaint` (the form asks again)."""
    if value is None:
        say(dispatcher, complaint)
    return {slot: value}
