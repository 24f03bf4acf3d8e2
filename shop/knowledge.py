"""Policy answers from data/knowledge/policies.yml, filled in from shop.yml."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional

import yaml

from shop.settings import PROJECT_ROOT, Settings, get_settings

KNOWLEDGE_FILE = PROJECT_ROOT / "data" / "knowledge" / "policies.yml"


def load_answers(path: Path, settings: Settings) -> Dict[str, str]:
    """Answers keyed by intent name; a topic without intent or answer is a configuration error."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    answers: Dict[str, str] = {}
    for name, topic in (raw.get("topics") or {}).items():
        if not isinstance(topic, dict) or not topic.get("intent") or not topic.get("answer"):
            raise ValueError(f"{path}: topic {name!r} needs both 'intent' and 'answer'")
        answers[topic["intent"]] = topic["answer"].format(
            return_window_days=settings.returns.window_days, shop_name=settings.shop_name
        )
    return answers


@lru_cache(maxsize=1)
def _answers() -> Dict[str, str]:
    return load_answers(KNOWLEDGE_FILE, get_settings())


def policy_answer(intent: Optional[str]) -> Optional[str]:
    return _answers().get(intent or "")
