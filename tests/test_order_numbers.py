"""A shop's order number format: found as customers type it, stored form recovered, the rest left alone."""

from __future__ import annotations

import pytest

from shop.order_numbers import OrderNumberFormat, loosen, suggest_pattern
from shop.orders import normalise_reference

DEMO = OrderNumberFormat(r"\d{5,8}", "10001")
ALNUM = OrderNumberFormat(r"NW-\d{4}-\d{5}", "NW-2024-00017")
AMAZON = OrderNumberFormat(r"\d{3}-\d{7}-\d{7}", "113-4567891-2345678")


def found(numbers: OrderNumberFormat, text: str) -> list[str]:
    return [numbers.canonical(match.group(0)) for match in numbers.find(text)]


@pytest.mark.parametrize("text, expected", [
    ("NW-2024-00017", ["NW-2024-00017"]),
    ("nw 2024 00017", ["NW-2024-00017"]),
    ("my order is nw202400017, thanks", ["NW-2024-00017"]),
    ("#NW-2024-00017", ["NW-2024-00017"]),
    ("order no. nw-2024-00017.", ["NW-2024-00017"]),
    ("NW-2024-00017 and NW-2023-00101", ["NW-2024-00017", "NW-2023-00101"]),
    ("NW-2024-00017-2", []),  # a longer id is not this shop's number
    ("R-12", []),
    ("it cost 10001.50 on 2024-05-01", []),
])
def test_alphanumeric_numbers_are_found_as_typed(text, expected):
    assert found(ALNUM, text) == expected


@pytest.mark.parametrize("text, expected", [
    ("where is 10001?", ["10001"]),
    ("#10001", ["10001"]),
    ("10001, 10002", ["10001", "10002"]),
    ("R-10001", []),  # a return id
    ("call me on 555 123 4567 or 07946 095812", []),  # phone numbers
    ("$10001", []), ("it cost 10001.50", []), ("2024-05-01", []),  # prices and dates
])
def test_digit_numbers_are_not_confused_with_phone_numbers_prices_or_return_ids(text, expected):
    assert found(DEMO, text) == expected


@pytest.mark.parametrize("typed", ["113-4567891-2345678", "113 4567891 2345678", "11345678912345678"])
def test_separators_are_put_back_where_the_example_has_them(typed):
    assert found(AMAZON, f"order {typed} please") == ["113-4567891-2345678"]


def test_a_separator_may_stand_where_letters_meet_digits():
    assert loosen(r"NW\d{6}") == r"NW[-\s]?\d{6}"
    assert found(OrderNumberFormat(r"NW\d{6}", "NW123456"), "it's nw-123456") == ["NW123456"]


@pytest.mark.parametrize("pattern, example, error", [
    ("(", "1", "not a valid regular expression"),
    (r"\d*", "1", "matches an empty text"),
    (r"\d{5}", "ABC", "does not match"),
])
def test_a_wrong_format_is_a_clear_error(pattern, example, error):
    with pytest.raises(ValueError, match=error):
        OrderNumberFormat(pattern, example)


def test_the_importers_suggestion_fits_the_file():
    assert suggest_pattern(["NW-2024-00017", "NW-2023-00101"]) == r"NW-\d{4}-\d{5}"
    assert suggest_pattern(["1001", "20001"]) == r"\d{4,5}"
    assert suggest_pattern(["AB-12", "CD-345"]) == r"[A-Z]{2}-\d{2,3}"
    assert suggest_pattern(["AB12", "1-2-3"]) is None


@pytest.mark.parametrize("text, expected", [
    ("nw 2024 00017", "NW-2024-00017"), ("order no. NW-2024-00017", "NW-2024-00017"), ("r-12", "R-12"),
    ("NW-2024-00017 or NW-2024-00018", None), ("my order from tuesday", None), ("10001", None),
])
def test_a_form_answer_holds_exactly_one_reference(text, expected):
    assert normalise_reference(text, ALNUM) == expected
