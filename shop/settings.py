"""Settings from shop.yml, with environment overrides, so rules are configuration rather than code."""

from __future__ import annotations

import ipaddress
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
class ThrottlePolicy:
    """Failed order-number/email checks allowed across conversations (shop.yml `verification.throttle`), so that
    nobody can try pair after pair by starting new conversations: in any `window_minutes`, at most
    `max_failures_per_order` for one order number, `per_sender` for one conversation id and `per_client` from one
    client address (0 turns a limit off). `store`: auto (Redis when the lock store uses it, else the shop database),
    redis or database."""

    window_minutes: float = 15.0
    max_failures_per_order: int = 10
    per_sender: int = 10
    per_client: int = 30
    store: str = "auto"


DEFAULT_RATE_LIMIT_MESSAGE = ("You're sending messages faster than I can answer. Please wait {retry_after} seconds "
                              "and try again.")


@dataclass(frozen=True)
class RateLimits:
    """Messages a client address may send to the channels' webhooks in `window_seconds` (shop.yml `rate_limits`);
    more get HTTP 429 with Retry-After, or `message` on socket.io and Slack. `per_client` 0 turns it off. `store`:
    auto (Redis when the lock store uses it, else this process), redis or memory."""

    window_seconds: float = 60.0
    per_client: int = 60
    store: str = "auto"
    message: str = DEFAULT_RATE_LIMIT_MESSAGE


@dataclass(frozen=True)
class ClientAddresses:
    """Where a customer's address comes from (shop.yml `client_addresses`): behind a balancer in
    `trusted_proxies` it is taken from X-Forwarded-For; addresses in `exempt` (this machine, by default) are not
    rate limited or throttled per client."""

    trusted_proxies: Tuple[str, ...] = ("127.0.0.0/8", "::1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                        "fc00::/7")
    exempt: Tuple[str, ...] = ("127.0.0.0/8", "::1")


@dataclass(frozen=True)
class PrivacyPolicy:
    """How long customers' personal data is kept (shop.yml `privacy`), applied by `python -m shop.privacy retention`
    (docs/privacy.md). Ages in days, 0 keeps for ever: `conversations_days` for the tracker store's events and the
    event consumer's conversation_events (a whole conversation, once its last event is that old),
    `handoff_tickets_days`, `feedback_days` (satisfaction answers and per-message sentiment), `emails_days` (the
    email outbox). `order_contact_data`: what erasure does to the name and email behind the shop's orders (and to
    return reasons the customer wrote), keep or anonymise; with anonymise, `order_contacts_days` > 0 also anonymises
    customers whose latest order is that old."""

    conversations_days: int = 90
    handoff_tickets_days: int = 365
    feedback_days: int = 365
    emails_days: int = 90
    order_contacts_days: int = 0
    order_contact_data: str = "anonymise"


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
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    client_addresses: ClientAddresses = field(default_factory=ClientAddresses)
    privacy: PrivacyPolicy = field(default_factory=PrivacyPolicy)


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


def _section(raw: Dict[str, Any], name: str) -> Dict[str, Any]:
    section = raw.get(name) or {}
    if not isinstance(section, dict):
        raise ValueError(f"{name} must be a mapping of settings, got {section!r}")
    return section


def _non_negative_int(section: Dict[str, Any], prefix: str, name: str, default: int) -> int:
    value = section.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{prefix}.{name} must be a whole number >= 0, got {value!r}")
    return value


def _positive_number(section: Dict[str, Any], prefix: str, name: str, default: float) -> float:
    value = section.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{prefix}.{name} must be a number > 0, got {value!r}")
    return float(value)


def _choice(section: Dict[str, Any], prefix: str, name: str, choices: Tuple[str, ...]) -> str:
    value = str(section.get(name, choices[0])).strip().lower()
    if value not in choices:
        raise ValueError(f"{prefix}.{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def throttle_policy(raw: Dict[str, Any]) -> ThrottlePolicy:
    """shop.yml `verification.throttle`."""
    section = _section(_section(raw, "verification"), "throttle")
    prefix, default = "verification.throttle", ThrottlePolicy()
    return ThrottlePolicy(
        window_minutes=_positive_number(section, prefix, "window_minutes", default.window_minutes),
        max_failures_per_order=_non_negative_int(section, prefix, "max_failures_per_order",
                                                 default.max_failures_per_order),
        per_sender=_non_negative_int(section, prefix, "per_sender", default.per_sender),
        per_client=_non_negative_int(section, prefix, "per_client", default.per_client),
        store=_choice(section, prefix, "store", ("auto", "redis", "database")),
    )


def rate_limits(raw: Dict[str, Any]) -> RateLimits:
    """shop.yml `rate_limits`; the message must say when to come back ({retry_after} seconds)."""
    section = _section(raw, "rate_limits")
    prefix, default = "rate_limits", RateLimits()
    message = " ".join(str(section.get("message", default.message)).split())
    try:
        message.format(retry_after=1)
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(f"rate_limits.message may only use the placeholder {{retry_after}}: {error!r}") from error
    return RateLimits(
        window_seconds=_positive_number(section, prefix, "window_seconds", default.window_seconds),
        per_client=_non_negative_int(section, prefix, "per_client", default.per_client),
        store=_choice(section, prefix, "store", ("auto", "redis", "memory")),
        message=message,
    )


def client_addresses(raw: Dict[str, Any]) -> ClientAddresses:
    """shop.yml `client_addresses`: lists of addresses or networks (CIDR), each checked here."""
    section = _section(raw, "client_addresses")
    default = ClientAddresses()
    lists = {}
    for name in ("trusted_proxies", "exempt"):
        value = section.get(name, list(getattr(default, name)))
        if not isinstance(value, list):
            raise ValueError(f"client_addresses.{name} must be a list of addresses or networks, got {value!r}")
        for network in value:
            try:
                ipaddress.ip_network(str(network), strict=False)
            except ValueError as error:
                raise ValueError(f"client_addresses.{name}: {network!r} is not an address or network") from error
        lists[name] = tuple(str(network) for network in value)
    return ClientAddresses(**lists)


def privacy_policy(raw: Dict[str, Any]) -> PrivacyPolicy:
    """shop.yml `privacy`: `retention_days` per kind of data and `order_contact_data` (keep | anonymise)."""
    section = _section(raw, "privacy")
    days = _section(section, "retention_days")
    prefix, default = "privacy.retention_days", PrivacyPolicy()
    unknown = sorted(set(days) - {"conversations", "handoff_tickets", "feedback", "emails", "order_contacts"})
    if unknown:
        raise ValueError(f"{prefix}: unknown setting(s) {', '.join(map(str, unknown))}")
    contact = dict(section)
    if str(contact.get("order_contact_data", "")).strip().lower() == "anonymize":
        contact["order_contact_data"] = "anonymise"
    return PrivacyPolicy(
        conversations_days=_non_negative_int(days, prefix, "conversations", default.conversations_days),
        handoff_tickets_days=_non_negative_int(days, prefix, "handoff_tickets", default.handoff_tickets_days),
        feedback_days=_non_negative_int(days, prefix, "feedback", default.feedback_days),
        emails_days=_non_negative_int(days, prefix, "emails", default.emails_days),
        order_contacts_days=_non_negative_int(days, prefix, "order_contacts", default.order_contacts_days),
        order_contact_data=_choice(contact, "privacy", "order_contact_data", ("anonymise", "keep")),
    )


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
        throttle=throttle_policy(raw),
        rate_limits=rate_limits(raw),
        client_addresses=client_addresses(raw),
        privacy=privacy_policy(raw),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
