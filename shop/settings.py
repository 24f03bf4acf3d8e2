"""Settings from shop.yml, with environment overrides, so rules are configuration rather than code."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Tuple

import yaml

from shop.order_numbers import OrderNumberFormat

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ReturnPolicy:
    window_days: int = 30
    require_delivered: bool = True
    allow_final_sale: bool = False
    reasons: List[str] = field(default_factory=list)
    refund_methods: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SentimentPolicy:
    """How the dialogue reacts to the sentiment of customer messages (shop.yml `sentiment`)."""

    negative_confidence: float = 0.7
    complaint_words: Tuple[str, ...] = ()
    ask_satisfaction: bool = True


@dataclass(frozen=True)
class UnderstandingPolicy:
    """What the bot does with a message it is unsure about (shop.yml `understanding`): ask "Did you mean ...?"
    with its best guesses as buttons when the best is at least `clarify_min_confidence`, showing up to
    `max_options` skills each at least `option_min_confidence`; below that, say what it can do."""

    clarify_min_confidence: float = 0.4
    option_min_confidence: float = 0.1
    max_options: int = 3


@dataclass(frozen=True)
class Settings:
    shop_name: str
    database_url: str
    seed_demo_data: bool
    returns: ReturnPolicy
    max_verification_failures: int
    transcript_turns: int
    fallbacks_before_offer: int
    handoff_next_steps: str
    sentiment: SentimentPolicy = field(default_factory=SentimentPolicy)
    order_numbers: OrderNumberFormat = field(default_factory=OrderNumberFormat)
    understanding: UnderstandingPolicy = field(default_factory=UnderstandingPolicy)


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _resolve_sqlite_path(url: str) -> str:
    """Make relative SQLite paths relative to the project, not to whatever directory we run in."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
        path = PROJECT_ROOT / url[len(prefix):]
        path.parent.mkdir(parents=True, exist_ok=True)
        return prefix + str(path)
    return url


def config_path(path: Path | None = None) -> Path:
    """shop.yml, or the file SHOP_CONFIG names (a second shop, a test fixture)."""
    return Path(os.environ.get("SHOP_CONFIG", path or PROJECT_ROOT / "shop.yml"))


def read_config(path: Path | None = None) -> Dict[str, Any]:
    return yaml.safe_load(config_path(path).read_text(encoding="utf-8")) or {}


def order_number_format(raw: Dict[str, Any]) -> OrderNumberFormat:
    """shop.yml `order_numbers`; without it, the demo shop's 5 to 8 digits."""
    section = raw.get("order_numbers") or {}
    default = OrderNumberFormat()
    return OrderNumberFormat(pattern=str(section.get("pattern", default.pattern)),
                             example=str(section.get("example", default.example)))


def understanding_policy(raw: Dict[str, Any]) -> UnderstandingPolicy:
    section = raw.get("understanding") or {}
    default = UnderstandingPolicy()
    policy = UnderstandingPolicy(
        clarify_min_confidence=float(section.get("clarify_min_confidence", default.clarify_min_confidence)),
        option_min_confidence=float(section.get("option_min_confidence", default.option_min_confidence)),
        max_options=int(section.get("max_options", default.max_options)),
    )
    for name in ("clarify_min_confidence", "option_min_confidence"):
        if not 0 <= getattr(policy, name) <= 1:
            raise ValueError(f"understanding.{name} must be between 0 and 1, got {getattr(policy, name)}")
    if policy.max_options < 1:
        raise ValueError(f"understanding.max_options must be at least 1, got {policy.max_options}")
    return policy


def load_settings(path: Path | None = None) -> Settings:
    raw = read_config(path)
    returns = raw.get("returns", {})
    window = int(os.environ.get("SHOP_RETURN_WINDOW_DAYS", returns.get("window_days", 30)))
    if window < 0:
        raise ValueError(f"returns.window_days must be >= 0, got {window}")
    handoff = raw.get("handoff", {})
    sentiment = raw.get("sentiment", {})
    negative_confidence = float(sentiment.get("negative_confidence", 0.7))
    if not 0 <= negative_confidence <= 1:
        raise ValueError(f"sentiment.negative_confidence must be between 0 and 1, got {negative_confidence}")
    return Settings(
        shop_name=raw.get("shop_name", "our shop"),
        database_url=_resolve_sqlite_path(
            os.environ.get("DATABASE_URL") or raw.get("database_url", "sqlite:///var/shop.db")
        ),
        seed_demo_data=_env_bool("SHOP_SEED_DEMO", bool(raw.get("seed_demo_data", True))),
        returns=ReturnPolicy(
            window_days=window,
            require_delivered=bool(returns.get("require_delivered", True)),
            allow_final_sale=bool(returns.get("allow_final_sale", False)),
            reasons=list(returns.get("reasons", [])),
            refund_methods=dict(returns.get("refund_methods", {"original_payment": "the original payment method"})),
        ),
        max_verification_failures=int(raw.get("verification", {}).get("max_failures", 3)),
        transcript_turns=int(handoff.get("transcript_turns", 10)),
        fallbacks_before_offer=int(handoff.get("fallbacks_before_offer", 2)),
        handoff_next_steps=" ".join(str(handoff.get("next_steps", "A member of our team will reply soon.")).split()),
        sentiment=SentimentPolicy(
            negative_confidence=negative_confidence,
            complaint_words=tuple(str(word).lower() for word in sentiment.get("complaint_words", [])),
            ask_satisfaction=bool(sentiment.get("ask_satisfaction", True)),
        ),
        order_numbers=order_number_format(raw),
        understanding=understanding_policy(raw),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
