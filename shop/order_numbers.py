"""A shop's order numbers (shop.yml `order_numbers`): what they look like, and finding them where customers type them.

Why configuration: every shop system numbers orders its own way (`10001`, `NW-2024-00017`, `113-4567891-2345678`).
The importer accepts only numbers that fit the shop's pattern, and the chat finds exactly those, so whatever can be
imported can be asked about. Customers do not type numbers the way they are stored: they write them in lower case,
with spaces instead of dashes, without the dashes, after `#` or `order no.`. `find` allows for that; the database
lookup (shop.orders.find_order) compares numbers without their separators.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, List, Optional, Sequence

# What customers put between the parts of a number: a dash or spaces (stored numbers use '-' or nothing).
SEPARATORS = "- "
LOOSE_SEPARATOR = r"[-\s]?"
# Text that must not touch a number on either side: more of a word or number, a currency sign, a '+' (phone
# numbers), a decimal point or a date's or phone number's next part ("12.50", "10001-2", "555 1234").
_BEFORE = r"(?<![A-Za-z0-9+$€£¥])(?<![0-9][-./,:\s])(?<![A-Za-z]-)"
_AFTER = r"(?![A-Za-z0-9])(?![-./,:][0-9])(?!\s[0-9])"


def compact(reference: str) -> str:
    """The number without separators, in upper case: how typed and stored numbers are compared."""
    return re.sub(r"[-\s]", "", reference).upper()


def _tokens(pattern: str) -> List[str]:
    """The pattern's atoms, each with its quantifier: escapes, character classes, groups and literals."""
    tokens, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\":
            j = i + 2
        elif pattern[i] == "[":
            j = pattern.index("]", i + 2 if pattern[i + 1:i + 2] in ("]", "^") else i + 1) + 1
        elif pattern[i] == "(":
            depth, j = 0, i
            while True:
                depth += {"(": 1, ")": -1}.get(pattern[j], 0)
                j += 2 if pattern[j] == "\\" else 1
                if depth == 0:
                    break
        else:
            j = i + 1
        if j < len(pattern) and pattern[j] == "{":
            j = pattern.index("}", j) + 1
        elif j < len(pattern) and pattern[j] in "?*+":
            j += 1
        tokens.append(pattern[i:j])
        i = j
    return tokens


def _is_separator(token: str) -> bool:
    return token.rstrip("?") in {"-", "\\-", " ", "\\ ", "\\s", "[- ]", "[ -]", "[-\\s]", "[\\s-]"}


def _kind(token: str) -> str:
    """'letter', 'digit' or '' for what an atom matches, so that a separator may go where letters meet digits."""
    atom = re.sub(r"(\{[^}]*\}|[?*+])$", "", token)
    if atom in ("\\d", "[0-9]") or atom.isdigit():
        return "digit"
    if atom.isalpha() or atom in ("[A-Z]", "[A-Za-z]", "[a-zA-Z]"):
        return "letter"
    return ""


def loosen(pattern: str) -> str:
    """The pattern as customers type it: each separator may be a dash, a space or nothing, and one may stand
    where letters meet digits ('NW\\d{6}' also finds 'nw 123456')."""
    parts: List[str] = []
    previous = ""
    for token in _tokens(pattern):
        if _is_separator(token):
            parts.append(LOOSE_SEPARATOR)
            previous = ""
            continue
        kind = _kind(token)
        if previous and kind and kind != previous:
            parts.append(LOOSE_SEPARATOR)
        parts.append(token)
        previous = kind
    return "".join(parts)


@dataclass(frozen=True)
class OrderNumberFormat:
    """shop.yml `order_numbers`: `pattern`, a regular expression for a whole order number as stored (upper case);
    `example`, one number in that format that the messages quote."""

    pattern: str = r"\d{5,8}"
    example: str = "10001"
    _strict: re.Pattern = field(init=False, repr=False, compare=False)
    _loose: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            strict = re.compile(rf"(?:{self.pattern})")
            loose = re.compile(rf"{_BEFORE}(?:{loosen(self.pattern)}){_AFTER}", re.IGNORECASE)
        except (re.error, ValueError, IndexError) as error:
            raise ValueError(f"order_numbers.pattern {self.pattern!r} is not a valid regular expression: {error}") \
                from error
        if strict.fullmatch(""):
            raise ValueError(f"order_numbers.pattern {self.pattern!r} matches an empty text")
        if not strict.fullmatch(self.example):
            raise ValueError(f"order_numbers.example {self.example!r} does not match order_numbers.pattern "
                             f"{self.pattern!r}")
        object.__setattr__(self, "_strict", strict)
        object.__setattr__(self, "_loose", loose)

    def accepts(self, order_id: str) -> bool:
        """True when `order_id`, as stored, is in this shop's format."""
        return self._strict.fullmatch(order_id) is not None

    def find(self, text: str) -> List[re.Match]:
        """Every order number in `text`, as typed, left to right."""
        return list(self._loose.finditer(text or ""))

    def canonical(self, typed: str) -> str:
        """The stored form of a typed number where it can be told ('nw 2024 00017' -> 'NW-2024-00017' when the
        example has dashes there); otherwise its compact form, which the database lookup also understands."""
        upper = re.sub(r"\s+", " ", typed.strip()).upper()
        if self.accepts(upper):
            return upper
        typed_compact, example_compact = compact(upper), compact(self.example)
        if len(typed_compact) == len(example_compact):
            rebuilt, position = [], 0
            for char in self.example:
                if char in SEPARATORS:
                    rebuilt.append(char)
                else:
                    rebuilt.append(typed_compact[position])
                    position += 1
            candidate = "".join(rebuilt)
            if self.accepts(candidate):
                return candidate
        return typed_compact if self.accepts(typed_compact) else upper


def suggest_pattern(order_ids: Iterable[str]) -> Optional[str]:
    """A pattern that fits all of `order_ids` (for the importer's error message), or None when they have no common
    shape. Letters that every number shares stay literal; digit runs become \\d{n} or \\d{min,max}."""
    shapes: List[List[Sequence]] = []
    for order_id in order_ids:
        runs = re.findall(r"[0-9]+|[A-Z]+|[^A-Z0-9]+", order_id.upper())
        shapes.append([("digit", len(run)) if run.isdigit() else ("text", run) for run in runs])
    if not shapes or any(len(shape) != len(shapes[0]) for shape in shapes):
        return None
    parts = []
    for column in zip(*shapes, strict=True):
        kinds = {kind for kind, _ in column}
        if kinds == {"digit"}:
            low, high = min(n for _, n in column), max(n for _, n in column)
            parts.append(rf"\d{{{low}}}" if low == high else rf"\d{{{low},{high}}}")
        elif len(kinds) == 1 and len({value for _, value in column}) == 1:
            parts.append(re.escape(column[0][1]).replace("\\-", "-"))
        elif kinds == {"text"} and all(str(value).isalpha() for _, value in column):
            low, high = min(len(v) for _, v in column), max(len(v) for _, v in column)
            parts.append(f"[A-Z]{{{low}}}" if low == high else f"[A-Z]{{{low},{high}}}")
        else:
            return None
    return "".join(parts)
