"""What the bot does when it is not sure what the customer means: ask, don't refuse.

- A message the classifier is unsure about gets "Did you mean ...?" with its best guesses as buttons (shop.yml
  `understanding` says how sure it must be). A second unclear message right after that question brings the offer
  of a person: the customer is asked to rephrase once, not again and again.
- A message with only an order number, a return id, an email or an item name, outside a form, gets "what would
  you like to do with it?" with the order skills as buttons; the number and email are kept for the skill.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.base import ShopAction
from actions.messages import MESSAGE_NAME, catalogue, say
from shop.settings import get_settings

CLARIFICATION = "clarification"  # bot message metadata: this message was a "Did you mean ...?" question


def clarification_options(parse_data: Optional[Dict[str, Any]]) -> List[str]:
    """The intents worth offering for a message, best first: skills the catalogue can name, confident enough.
    Empty when even the best guess is below `clarify_min_confidence`."""
    policy = get_settings().understanding
    nameable = catalogue()["clarify"]["options"]
    ranking = [entry for entry in (parse_data or {}).get("intent_ranking") or []
               if entry.get("name") in nameable and float(entry.get("confidence") or 0) >= policy.option_min_confidence]
    ranking.sort(key=lambda entry: -float(entry["confidence"]))
    if not ranking or float(ranking[0]["confidence"]) < policy.clarify_min_confidence:
        return []
    return [entry["name"] for entry in ranking[:policy.max_options]]


def just_asked_to_clarify(tracker: Tracker) -> bool:
    """True when the bot's last words before the latest customer message were a "Did you mean ...?" question."""
    seen_customer = False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            if seen_customer:
                return False
            seen_customer = True
        elif event.get("event") == "bot" and seen_customer:
            return bool((event.get("metadata") or {}).get(CLARIFICATION))
    return False


def ask_to_clarify(dispatcher: CollectingDispatcher, options: List[str]) -> None:
    entry = catalogue()["clarify"]
    buttons = [{"title": entry["options"][intent], "payload": f"/{intent}"} for intent in options]
    dispatcher.utter_message(text=entry["text"], buttons=buttons, **{CLARIFICATION: True, MESSAGE_NAME: "clarify"})


def ask_what_to_do(dispatcher: CollectingDispatcher, tracker: Tracker, *, about_anything: bool = False) -> bool:
    """"What would you like to do with order X?" with the order skills as buttons, when the latest message holds
    an order number, a return id or an email (or always, with `about_anything`); False when it asked nothing."""
    entities = {entity.get("entity"): entity.get("value") for entity in tracker.latest_message.get("entities", [])}
    reference = entities.get("order_id") or entities.get("return_id")
    if reference:
        say(dispatcher, "ask_what_about_order", reference=reference)
    elif entities.get("email"):
        say(dispatcher, "ask_what_about_email")
    elif about_anything:
        say(dispatcher, "ask_what_about_it")
    else:
        return False
    return True


class ActionAskWhatToDo(ShopAction):
    """An order number, email or item name on its own: ask which order skill the customer wants."""

    def name(self) -> str:
        return "action_ask_what_to_do"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        ask_what_to_do(dispatcher, tracker, about_anything=True)
        return []
