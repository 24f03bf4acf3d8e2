"""Rasa NLU component: a message that is only an order number, a return id or an email is the intent `inform`.

Why: customers often open with just their order number or email, or answer a question with it. Such a message
has no words for the intent classifier to go on (an unseen number like 'NW-2024-00017' is noise to a sentence
encoder), so its confidence is low and it used to end in "Sorry, I didn't understand". Whether a message is
*only* a reference is plain to see: this component removes the entities and a few filler words and, when nothing
is left, sets the intent to `inform` with confidence 1.0. The dialogue then uses the reference: a form that asked
for it takes it, and outside a form the bot asks what the customer wants to do with that order.
Place it after the entity extractors and before FallbackClassifier.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class BareReferenceClassifier(GraphComponent):
    """Sets `inform` (confidence 1.0) on messages made only of reference entities and filler words."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {
            "intent": "inform",
            "entities": ["order_id", "return_id", "email"],
            # Words that may stand around a reference without making it a request ("order no. 10001, my email
            # is a@b.com").
            "filler_words": ["order", "orders", "number", "num", "no", "nr", "id", "ref", "reference", "my", "our",
                             "is", "it", "its", "it's", "the", "this", "that", "here", "email", "e-mail", "mail",
                             "address", "and", "hi", "hello", "hey", "thanks", "thank", "you", "please", "pls",
                             "ok", "okay", "yes", "sure", "confirmation", "i", "have", "got", "for", "on", "with"],
        }

    def __init__(self, config: Dict[str, Any]) -> None:
        self._config = config
        self._filler = {word.lower() for word in config["filler_words"]}

    @classmethod
    def create(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> BareReferenceClassifier:
        return cls({**cls.get_default_config(), **config})

    def is_bare_reference(self, message: Message) -> bool:
        text = message.get(TEXT) or ""
        spans = sorted((e["start"], e["end"]) for e in message.get(ENTITIES, [])
                       if e.get("entity") in self._config["entities"] and "start" in e and "end" in e)
        if not spans:
            return False
        rest, position = [], 0
        for start, end in spans:
            rest.append(text[position:start])
            position = max(position, end)
        rest.append(text[position:])
        words = re.findall(r"[a-z][a-z'-]*", " ".join(rest).lower())
        return all(word in self._filler for word in words) and not re.search(r"\d", " ".join(rest))

    def process(self, messages: List[Message]) -> List[Message]:
        intent = self._config["intent"]
        for message in messages:
            if not self.is_bare_reference(message):
                continue
            ranking = [entry for entry in message.get(INTENT_RANKING_KEY, []) if entry.get("name") != intent]
            message.set(INTENT, {"name": intent, "confidence": 1.0}, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [{"name": intent, "confidence": 1.0}, *ranking], add_to_output=True)
        return messages
