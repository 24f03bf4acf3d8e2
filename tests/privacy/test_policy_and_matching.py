"""shop.yml `privacy` is read and checked; an email matches only where it stands alone, in any letter case."""

from __future__ import annotations

import pytest

from shop.privacy.matching import EmailMatcher, escape_like, valid_email, verified_order, verifies_one_of
from shop.settings import PrivacyPolicy, load_settings, privacy_policy


def test_the_shipped_shop_yml_has_a_privacy_block() -> None:
    policy = load_settings().privacy
    assert policy == PrivacyPolicy(conversations_days=90, handoff_tickets_days=365, feedback_days=365,
                                   emails_days=90, order_contacts_days=0, order_contact_data="anonymise")


def test_privacy_settings_are_read_with_defaults() -> None:
    assert privacy_policy({}) == PrivacyPolicy()
    policy = privacy_policy({"privacy": {"retention_days": {"conversations": 30, "order_contacts": 3650},
                                         "order_contact_data": "Anonymize"}})
    assert (policy.conversations_days, policy.order_contacts_days, policy.feedback_days) == (30, 3650, 365)
    assert policy.order_contact_data == "anonymise"
    assert privacy_policy({"privacy": {"order_contact_data": "keep"}}).order_contact_data == "keep"


@pytest.mark.parametrize(("section", "message"), [
    ({"retention_days": {"conversations": -1}}, "privacy.retention_days.conversations must be a whole number >= 0"),
    ({"retention_days": {"tickets": 30}}, "privacy.retention_days: unknown setting(s) tickets"),
    ({"retention_days": {"emails": "90 days"}}, "privacy.retention_days.emails must be a whole number"),
    ({"order_contact_data": "delete"}, "privacy.order_contact_data must be one of anonymise, keep"),
    ({"retention_days": [90]}, "retention_days must be a mapping"),
])
def test_invalid_privacy_settings_say_what_is_wrong(section, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        privacy_policy({"privacy": section})


def test_an_email_matches_alone_in_any_case_never_inside_another_address() -> None:
    matcher = EmailMatcher("Alice@Example.com")
    for text in ("alice@example.com", "mail ALICE@EXAMPLE.COM.", "<alice@example.com>", "(alice@example.com)",
                 "email:alice@example.com, thanks", "'alice@example.com'"):
        assert matcher.in_text(text), text
    for text in ("jimalice@example.com", "alice@example.com.au", "alice@example.community", "x.alice@example.com",
                 "alice@example-com", "alice+shop@example.com", None, ""):
        assert not matcher.in_text(text), text
    assert matcher.in_value({"event": "user", "parse_data": {"entities": [{"value": "Alice@example.com"}]}})
    assert not matcher.in_value({"event": "user", "text": "bob@example.com", "confidence": 0.9})
    assert matcher.is_email(" ALICE@example.com ") and not matcher.is_email("alice")


def test_search_needles_cover_json_escaping_and_like_wildcards() -> None:
    assert EmailMatcher("jürgen@example.com").needles == ["jürgen@example.com", "j\\u00fcrgen@example.com"]
    assert escape_like("a_b%c\\d") == "a\\_b\\%c\\\\d"
    assert valid_email(" Alice@Example.COM ") == "alice@example.com"
    assert valid_email("alice@") is None and valid_email("10001") is None


def test_verified_order_comes_only_from_the_verification_slot() -> None:
    assert verified_order({"event": "slot", "name": "verified_order_id", "value": "nw-1 "}) == "NW-1"
    assert verified_order({"event": "slot", "name": "order_id", "value": "10001"}) is None
    assert verified_order({"event": "slot", "name": "verified_order_id", "value": None}) is None
    assert verified_order("not an event") is None
    assert verifies_one_of({"event": "slot", "name": "verified_order_id", "value": "10001"}, {"10001"}) == "10001"
    assert verifies_one_of({"event": "slot", "name": "verified_order_id", "value": "10003"}, {"10001"}) is None
