"""The pieces that name each other by string agree: domain, action server, message catalogue, rules."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from rasa_sdk.executor import ActionExecutor

from actions.messages import catalogue
from shop.cancellations import CANCEL_RULES
from shop.returns import REFUSAL_RULES
from shop.settings import PROJECT_ROOT

DOMAIN = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text())
ACTION_SOURCES = "\n".join(path.read_text() for path in Path(PROJECT_ROOT / "actions").glob("*.py"))


def test_every_domain_action_is_served_and_every_served_action_is_declared():
    executor = ActionExecutor()
    executor.register_package("actions")
    assert set(executor.actions) == set(DOMAIN["actions"])


def test_every_refusal_rule_has_a_message():
    names = set(catalogue())
    assert {f"return_refused_{rule}" for rule in REFUSAL_RULES} <= names
    assert {f"cancel_refused_{rule}" for rule in CANCEL_RULES} <= names


def test_every_message_is_used_and_every_used_message_exists():
    used = set(re.findall(r'say\(\s*dispatcher,\s*"([a-z_]+)"', ACTION_SOURCES))
    used |= set(re.findall(r'complaint="([a-z_]+)"', ACTION_SOURCES))
    used |= set(re.findall(r'catalogue\(\)\["([a-z_]+)"\]', ACTION_SOURCES))
    used |= {f"ask_{slot}" for slot in re.findall(r'slot = "([a-z_]+)"', ACTION_SOURCES)}
    used |= {f"return_refused_{rule}" for rule in REFUSAL_RULES} | {f"cancel_refused_{rule}" for rule in CANCEL_RULES}
    assert used == set(catalogue())


def test_forms_ask_for_every_slot():
    asks = {name[len("action_ask_"):] for name in DOMAIN["actions"] if name.startswith("action_ask_")}
    for form in DOMAIN["forms"].values():
        assert set(form["required_slots"]) <= asks
