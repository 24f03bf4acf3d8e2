"""Building rasa-sdk trackers the way Rasa sends them to the action server."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

DEFAULT_SLOTS: Dict[str, Any] = {"verification_failures": 0}


def feeling(label: str, confidence: float = 0.95) -> Dict[str, Any]:
    """A message's `sentiment` as custom_components/sentiment_analyzer.py puts it in the parse data."""
    rest = round((1 - confidence) / 2, 4)
    return {"label": label, "confidence": confidence,
            "scores": {name: confidence if name == label else rest for name in ("negative", "neutral", "positive")}}


def parse_data(text: str, intent: str, sentiment: Optional[Dict[str, Any]] = None,
               ranking: Optional[Dict[str, float]] = None, entities: Optional[Dict[str, str]] = None,
               frustrated: Optional[bool] = None) -> Dict[str, Any]:
    """A parse result; `ranking` {intent: confidence} becomes the intent_ranking, `entities` {entity: value}."""
    data: Dict[str, Any] = {"intent": {"name": intent, "confidence": 1.0}, "text": text,
                            "entities": [{"entity": k, "value": v} for k, v in (entities or {}).items()]}
    if ranking is not None:
        data["intent_ranking"] = [{"name": name, "confidence": confidence} for name, confidence in ranking.items()]
    if sentiment:
        data["sentiment"] = sentiment
    if frustrated is not None:
        data["frustration"] = {"score": 0.9 if frustrated else 0.1, "frustrated": frustrated}
    return data


def user_event(text: str, intent: str = "inform", sentiment: Optional[Dict[str, Any]] = None,
               **parse: Any) -> Dict[str, Any]:
    return {"event": "user", "text": text, "parse_data": parse_data(text, intent, sentiment, **parse)}


def bot_event(text: str, **metadata: Any) -> Dict[str, Any]:
    return {"event": "bot", "text": text, "metadata": metadata}


def make_tracker(
    slots: Optional[Dict[str, Any]] = None,
    new_slots: Optional[Dict[str, Any]] = None,
    intent: str = "inform",
    text: str = "",
    history: Iterable[Dict[str, Any]] = (),
    active_loop: Optional[str] = None,
    sender_id: str = "test-conversation",
    sentiment: Optional[Dict[str, Any]] = None,
    **parse: Any,
) -> Tracker:
    """A tracker whose latest user message (with `sentiment`, see feeling(), and `parse` for parse_data()) set
    `new_slots` (what a form validation action sees)."""
    new_slots = new_slots or {}
    latest = parse_data(text, intent, sentiment, **parse)
    events: List[Dict[str, Any]] = [*history, {"event": "user", "text": text, "parse_data": latest}]
    events += [{"event": "slot", "name": name, "value": value} for name, value in new_slots.items()]
    all_slots = {**DEFAULT_SLOTS, **(slots or {}), **new_slots}
    return Tracker(
        sender_id=sender_id,
        slots=all_slots,
        latest_message=latest,
        events=events,
        paused=False,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name="action_listen",
    )


def texts(dispatcher: CollectingDispatcher) -> str:
    """Everything the bot said, as one string for assertions."""
    return "\n".join(message.get("text") or "" for message in dispatcher.messages)


def slot_events(events: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The final value of every slot the action set."""
    return {event["name"]: event["value"] for event in events if event.get("event") == "slot"}
