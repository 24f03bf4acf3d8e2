"""OrderNumberExtractor as Rasa runs it: the shop's format from shop.yml (or its own config), entities in Rasa's
format with the stored form as value, other entities kept."""

from __future__ import annotations

from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from custom_components.order_number_extractor import OrderNumberExtractor
from shop.settings import get_settings

CONTEXT = ExecutionContext(GraphSchema({}), node_name="OrderNumberExtractor0")


def extractor(tmp_path, **config) -> OrderNumberExtractor:
    return OrderNumberExtractor.create(config, LocalModelStorage(tmp_path), Resource("orders"), CONTEXT)


def extract(component: OrderNumberExtractor, text: str, entities=()) -> list:
    message = Message(data={TEXT: text, ENTITIES: list(entities)})
    component.process([message])
    return message.get(ENTITIES)


def test_numbers_in_the_shops_format_become_order_id_entities(tmp_path):
    entities = extract(extractor(tmp_path), "hi, order #10002 please")
    assert entities == [{"entity": "order_id", "value": "10002", "start": 11, "end": 16, "confidence": 1.0,
                         "extractor": "OrderNumberExtractor"}]


def test_the_format_comes_from_the_shop_configuration(tmp_path, monkeypatch):
    config = tmp_path / "shop.yml"
    config.write_text("order_numbers:\n  pattern: 'NW-\\d{4}-\\d{5}'\n  example: NW-2024-00017\n")
    monkeypatch.setenv("SHOP_CONFIG", str(config))
    get_settings.cache_clear()
    try:
        component = extractor(tmp_path)
    finally:
        monkeypatch.delenv("SHOP_CONFIG")
        get_settings.cache_clear()
    assert [e["value"] for e in extract(component, "it's nw 2024 00017, not 10002")] == ["NW-2024-00017"]


def test_a_pattern_in_the_component_config_wins(tmp_path):
    component = extractor(tmp_path, pattern=r"[A-Z]{2}\d{6}", example="AB123456")
    assert [e["value"] for e in extract(component, "ab 123456 or 10002")] == ["AB123456"]


def test_other_entities_are_kept_and_text_without_numbers_is_untouched(tmp_path):
    email = {"entity": "email", "value": "a@b.com", "start": 0, "end": 7}
    assert extract(extractor(tmp_path), "a@b.com", [email]) == [email]
    message = Message(data={TEXT: ""})
    extractor(tmp_path).process([message])
    assert message.get(ENTITIES) is None or message.get(ENTITIES) == []
