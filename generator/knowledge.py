"""The knowledge base the generator may speak from: the policy answers (policies.yml) and the FAQ (faq.yml).

Each passage is one answer the customer may be told as it is. It is found through its `keys`: the questions it
answers and each of its sentences, because a customer's question resembles another question, or the one sentence
holding the fact, more than a whole answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple

import yaml

from shop.knowledge import KNOWLEDGE_FILE
from shop.settings import Settings

FAQ_FILE = KNOWLEDGE_FILE.with_name("faq.yml")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")
QUESTION_WORDS = r"(?:how|what|when|where|which|who|why|can|could|do|does|did|is|are|will|would|should|may)"
QUESTION_BREAK = re.compile(  # "?", a sentence's end, " - ", and ", and"/", " before a question word
    rf"\?\s*|(?<=[.!])\s+|\s+-\s+|,?\s+(?:and|but|or|also)\s+(?={QUESTION_WORDS}\b)|,\s+(?={QUESTION_WORDS}\b)",
    re.IGNORECASE)
QUESTION_START = re.compile(rf"{QUESTION_WORDS}\b", re.IGNORECASE)
CLAUSE_BREAK = re.compile(r";\s+|,\s+(?=(?:and|but|so)\s)", re.IGNORECASE)


@dataclass(frozen=True)
class Passage:
    id: str
    text: str
    keys: Tuple[str, ...]
    source: str = ""


def split_sentences(text: str) -> List[str]:
    return [part.strip() for part in SENTENCE_END.split(" ".join(text.split())) if part.strip()]


def split_clauses(sentence: str, min_words: int = 3) -> List[str]:
    """The independent parts of one sentence ("costs 4.95; it is free over 50.00", "X, and Y"), when it has
    more than one that can stand alone; else []. A reply must give the part a question asks about, not its
    neighbour ("when is shipping free?" answered with "it costs 4.95" shares the sentence, not the answer)."""
    parts = [part.strip(" ,;") for part in CLAUSE_BREAK.split(sentence)]
    parts = [part for part in parts if len(part.split()) >= min_words]
    return parts if len(parts) > 1 else []


def lead_with(text: str, focus: str) -> str:
    """`text` with the sentence holding `focus` moved to the front. Why: a small model answers with the first
    sentence of the passage it is given far more often than with the one the question is about."""
    parts = split_sentences(text)
    holder = next((number for number, sentence in enumerate(parts) if focus and focus in sentence), 0)
    return " ".join([parts[holder], *parts[:holder], *parts[holder + 1:]]) if holder else text


def question_parts(question: str, min_words: int = 3) -> List[str]:
    """The questions one message asks ("is apple pay ok and when does the money leave my account?" -> two), when
    it asks more than one; else []. Statements around them ("payment won't go through - ...") are not questions."""
    parts = [part.strip(" ,;-") for part in QUESTION_BREAK.split(" ".join(question.split()))]
    parts = [part for part in parts if len(part.split()) >= min_words and QUESTION_START.match(part)]
    return parts if len(parts) > 1 else []


def _passage(passage_id: str, entry: Dict[str, Any], settings: Settings, source: str, path: Path) -> Passage:
    if not isinstance(entry, dict) or not entry.get("answer"):
        raise ValueError(f"{path}: {passage_id!r} needs an 'answer'")
    text = " ".join(str(entry["answer"]).format(
        return_window_days=settings.returns.window_days, shop_name=settings.shop_name).split())
    questions = tuple(str(question) for question in entry.get("questions") or ())
    return Passage(passage_id, text, (*questions, *split_sentences(text)), source)


def load_passages(settings: Settings, policies: Path = KNOWLEDGE_FILE, faq: Path = FAQ_FILE) -> List[Passage]:
    """Every passage of the knowledge base, policy topics first."""
    topics = (yaml.safe_load(policies.read_text(encoding="utf-8")) or {}).get("topics") or {}
    entries = (yaml.safe_load(faq.read_text(encoding="utf-8")) or {}).get("entries") or {}
    passages = [_passage(f"policy.{name}", topic, settings, f"policies.yml#{name}", policies)
                for name, topic in topics.items()]
    for name, entry in entries.items():
        if not (entry or {}).get("questions"):
            raise ValueError(f"{faq}: entry {name!r} needs 'questions'")
        passages.append(_passage(f"faq.{name}", entry, settings, str(entry.get("source", "")), faq))
    return passages
