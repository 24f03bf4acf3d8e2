"""Skill: policy answers, read from data/knowledge/policies.yml (never written in code)."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.base import ShopAction, latest_intent
from actions.messages import MESSAGE_NAME, say
from shop.knowledge import policy_answer


class ActionAnswerPolicy(ShopAction):
    def name(self) -> str:
        return "action_answer_policy"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        answer = policy_answer(latest_intent(tracker))
        if answer:
            dispatcher.utter_message(text=answer, **{MESSAGE_NAME: "policy_answer"})
        else:
            say(dispatcher, "out_of_scope")
        return []
