"""Rasa NLU component: `order_id` entities in the shop's own order number format (shop.yml `order_numbers`).

Why not a regex in data/nlu.yml: the format is the shop's configuration, not training data, and customers type
numbers loosely (lower case, spaces or no dashes, after '#' or 'order no.'); shop/order_numbers.py finds them that
way and leaves return ids, phone numbers, prices and dates alone. The format is read when the model is loaded,
so a shop that changes shop.yml restarts Rasa; it does not retrain. The entity's value is the number as the shop
stores it wherever that can be told ('nw 2024 00017' -> 'NW-2024-00017').
"""

from __future__ import annotations

from typing import Any, Dict, List

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from shop.order_numbers import OrderNumberFormat
from shop.settings import order_number_format, read_config


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class OrderNumberExtractor(GraphComponent, EntityExtractorMixin):
    """Adds an `order_id` entity for every order number in the shop's format found in a message."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {
            # The entity the numbers are reported as (domain.yml maps it to the order_id slot).
            "entity": "order_id",
            # A pattern and example here replace shop.yml's `order_numbers` (null: read shop.yml, or SHOP_CONFIG).
            "pattern": None,
            "example": None,
        }

    def __init__(self, config: Dict[str, Any], numbers: OrderNumberFormat) -> None:
        self._config = config
        self._numbers = numbers

    @classmethod
    def create(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> OrderNumberExtractor:
        config = {**cls.get_default_config(), **config}
        if config["pattern"]:
            numbers = OrderNumberFormat(pattern=config["pattern"], example=config["example"] or "")
        else:
            numbers = order_number_format(read_config())
        return cls(config, numbers)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            if not text:
                continue
            found = [
                {"entity": self._config["entity"], "value": self._numbers.canonical(match.group(0)),
                 "start": match.start(), "end": match.end(), "confidence": 1.0}
                for match in self._numbers.find(text)
            ]
            if found:
                message.set(ENTITIES, message.get(ENTITIES, []) + self.add_extractor_name(found), add_to_output=True)
        return messages
