"""The tuning examples: question -> (passages, verified order facts) -> the short answer the assistant should give.

Built from this shop's own knowledge and configuration, so another shop gets examples for its own passages by
running the same command:
- `hand`: data/tuning/answers.yml, answers written for the shop's passages (yes/no answers start Yes/No, facts
  copied verbatim);
- `extract`: each passage's own `questions`, answered with the passage sentence closest to the question;
- `counterfactual`: hand examples with every figure changed in passage and answer alike, so the model learns to
  copy figures from the passage, not to remember this shop's (another shop's passages say other numbers);
- `unanswerable`: data/tuning/unanswerable.yml questions with the passage retrieval finds for them, and hand
  questions paired with an unrelated passage; the answer is prompt.DONT_KNOW_ANSWER;
- `order`: synthetic orders in every state (shop/orders.py `keyed_order_facts` writes their facts, as in serving),
  questions about the customer's own order, given the facts the service would give (today's date and the two
  facts closest to the question, the closest last; a passage only when it is as close), answers copying the fact
  that answers it; an example whose answer needs a fact the prompt lacks is left out.
Every prompt is built by generator/prompt.py exactly as the service builds it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Sequence, Tuple

import yaml

from generator.checks import NEGATION
from generator.knowledge import Passage, split_sentences
from generator.prompt import ASSISTANT, CUSTOMER, DONT_KNOW_ANSWER, Prompt, build_prompt
from generator.retrieval import KnowledgeIndex, closest_facts, facts_in_prompt_order, index_for
from generator.service import FACTS_MARGIN
from shop.orders import TODAY, describe_items, keyed_order_facts, order_fact_questions, spoken_day
from shop.settings import ReturnPolicy, get_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TUNING_DIR = PROJECT_ROOT / "data" / "tuning"
NUMBER = re.compile(r"\d+(?:[.,:]\d+)?")


@dataclass(frozen=True)
class Example:
    kind: str
    question: str
    answer: str
    passages: Tuple[str, ...] = ()
    facts: Tuple[str, ...] = ()
    history: Tuple[Tuple[str, str], ...] = field(default=())
    shop_name: str = ""

    def prompt(self) -> Prompt:
        return build_prompt(self.shop_name, self.question, self.passages, self.history, self.facts)


def passage_questions(passage: Passage) -> List[str]:
    """The `questions` of a knowledge entry (a passage's keys are its questions, then its sentences)."""
    return list(passage.keys[: len(passage.keys) - len(split_sentences(passage.text))])


def fill(text: str, values: Dict[str, object]) -> str:
    return " ".join(str(text).format(**values).split())


def load_hand_examples(path: Path, values: Dict[str, object]) -> List[Dict[str, str]]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [{"passage": str(item["passage"]), "ask": fill(item["ask"], values), "answer": fill(item["answer"], values)}
            for item in raw.get("examples") or []]


def load_unanswerable(path: Path) -> List[str]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [str(question) for question in raw.get("questions") or []]


def change_figures(passage: str, answer: str, rng: random.Random) -> Tuple[str, str]:
    """Passage and answer with each figure replaced by another of the same shape (4.95 -> 7.35, 30 -> 14)."""
    mapping: Dict[str, str] = {}
    for figure in NUMBER.findall(passage):
        if figure not in mapping:
            mapping[figure] = re.sub(r"\d", lambda _: str(rng.randint(0, 9)), figure)
            mapping[figure] = str(rng.randint(1, 9)) + mapping[figure][1:] if mapping[figure][0] == "0" else \
                mapping[figure]

    def swap(text: str) -> str:
        return NUMBER.sub(lambda match: mapping.get(match.group(0), match.group(0)), text)

    return swap(passage), swap(answer)


def closest_sentence(question: str, passage: Passage, encoder) -> str:
    sentences = split_sentences(passage.text)
    if len(sentences) == 1:
        return sentences[0]
    vectors = encoder.encode([question, *sentences])
    scores = vectors[1:] @ vectors[0]
    return sentences[int(scores.argmax())]


# -- orders -----------------------------------------------------------------------------------------------------

CARRIERS = ["DHL", "UPS", "DPD", "GLS", "PostNL", "Royal Mail", "Posten", "La Poste"]
ITEMS = ["Desk lamp", "Ceramic mug", "Linen shirt", "Wool scarf", "Phone case", "Garden chair", "Notebook",
         "Running shoes", "Tea set", "Backpack", "Table cloth", "Bike light"]


def synthetic_order(rng: random.Random, today: date, status: str) -> SimpleNamespace:
    """An order as shop/models.Order looks to order_facts, with made-up numbers in one of several id formats."""
    number = rng.choice([lambda: str(rng.randint(10000, 99999999)),
                         lambda: f"NW-{rng.randint(2019, 2026)}-{rng.randint(1, 99999):05d}",
                         lambda: f"{rng.randint(100, 999)}-{rng.randint(10**6, 10**7 - 1)}-{rng.randint(1, 10**7):07d}",
                         lambda: f"A{rng.randint(100000, 999999)}"])()
    ordered = datetime.combine(today - timedelta(days=rng.randint(1, 20)), datetime.min.time())
    shipped = ordered + timedelta(days=rng.randint(1, 3)) if status in ("shipped", "delivered") else None
    lines = [SimpleNamespace(quantity=rng.randint(1, 3), item_name=name, final_sale=False, returns=[])
             for name in rng.sample(ITEMS, rng.randint(1, 2))]
    order = SimpleNamespace(
        id=number, status=status, lines=lines, ordered_at=ordered, shipped_at=shipped,
        delivered_at=shipped + timedelta(days=rng.randint(1, 4)) if status == "delivered" else None,
        estimated_delivery=(today + timedelta(days=rng.randint(0, 5))) if status == "shipped" else None,
        cancelled_at=ordered + timedelta(days=1) if status == "cancelled" else None,
        carrier=rng.choice(CARRIERS) if shipped else None,
        tracking_number=f"{rng.choice(['JD', '1Z', 'TR', ''])}{rng.randint(10**9, 10**12)}" if shipped else None,
    )
    for line in lines:  # the return rules read a line's order (shop/returns.py refusal_rule)
        line.order = order
    return order


ORDER_QUESTIONS = {
    "arrival": ["when will my order arrive?", "will it arrive before the weekend?", "when does it get here",
                "will it be here by friday?", "is it going to come this week", "whens it coming"],
    "shipped": ["has it shipped yet?", "why hasn't it shipped?", "did you send it already", "is it on its way?",
                "when did it ship"],
    "tracking": ["what's the tracking number?", "can I have the tracking code", "which courier is bringing it?",
                 "who is delivering it"],
    "items": ["what did I order again?", "what's in this order?", "which items are in it"],
    "change": ["can I still change the address?", "is it too late to change the delivery address?",
               "can i still cancel it?", "can I still make changes to it"],
    "return": ["can I still return it?", "can i send it back if I don't like it", "is it too late to return it",
               "until when can I return this"],
}


def order_answer(kind: str, question: str, order: SimpleNamespace, facts: Dict[str, str]) -> str:
    """The answer to a `kind` question about `order`, whose facts (keyed_order_facts) are `facts` by kind. A yes/no
    answer says yes to "can I still ...?" and no to "is it too late ...?" when it still can."""
    number = order.id
    shipped = order.status in ("shipped", "delivered")
    too_late = "too late" in question.lower()
    if order.status == "cancelled":
        return f"Order {number} was cancelled on {spoken_day(order.cancelled_at)}."
    if kind == "return":  # the order's own return fact decides, as the return skill would
        fact = facts.get("not_returnable") or facts.get("return_window") or facts["cancellable"]
        if "cancellable" in facts:
            return fact
        return ("No, " if bool(NEGATION.search(fact)) != too_late else "Yes, ") + fact[0].lower() + fact[1:]
    if kind == "items":
        return f"Order {number} contains {describe_items(order)}."
    if kind == "change":  # the passages say what can be changed before shipping; the order says whether it has
        word = "No" if shipped != too_late else "Yes"
        if shipped:
            return f"{word}, order {number} has already shipped."
        cancellable = facts.get("cancellable", "")
        return f"{word}, {cancellable[0].lower()}{cancellable[1:]}" if "cancel" in question and cancellable else \
            f"{word}, order {number} has not shipped yet."
    if not shipped:
        return f"Order {number} has not shipped yet, so it has no tracking number yet." if kind == "tracking" \
            else f"Order {number} has not shipped yet."
    if kind == "tracking":
        return f"Order {number} is with {order.carrier}; the tracking number is {order.tracking_number}."
    if order.status == "delivered":
        return f"Order {number} was delivered on {spoken_day(order.delivered_at)}."
    if kind == "shipped":
        return f"Yes, order {number} left our warehouse on {spoken_day(order.shipped_at)} with {order.carrier}."
    return f"Order {number} is expected to arrive on {spoken_day(order.estimated_delivery)}."


def prompt_facts(index: KnowledgeIndex, question: str, keyed: Sequence[Tuple[str, str]],
                 questions: Dict[str, Tuple[str, ...]], limit: int) -> Tuple[List[str], float]:
    """The order facts the service gives the model for `question` (today's date, then the `limit` closest facts,
    the closest last), and the closest fact's similarity."""
    facts = closest_facts(index.similarities, question, [fact for key, fact in keyed if key != TODAY],
                          {fact: questions.get(key, ()) for key, fact in keyed}, limit)
    return facts_in_prompt_order([fact for key, fact in keyed if key == TODAY], facts), facts[0][1]


def order_examples(rng: random.Random, shop_name: str, count: int, index: KnowledgeIndex, min_score: float,
                   returns: ReturnPolicy, order_facts_given: int = 2) -> List[Example]:
    """`count` questions about synthetic orders, each prompt holding what the service would give the model."""
    examples: List[Example] = []
    statuses = ["pending", "processing", "shipped", "shipped", "delivered", "cancelled"]
    questions = order_fact_questions()
    for _ in range(count * 4):
        if len(examples) == count:
            break
        today = date(2026, 1, 1) + timedelta(days=rng.randint(0, 700))
        order = synthetic_order(rng, today, rng.choice(statuses))
        kind = rng.choice(list(ORDER_QUESTIONS))
        question = rng.choice(ORDER_QUESTIONS[kind])
        keyed = keyed_order_facts(order, today, returns)
        answer = order_answer(kind, question, order, {key: fact for key, fact in reversed(keyed)})
        given, top_score = prompt_facts(index, question, keyed, questions, order_facts_given)
        passages = tuple(hit.passage.text for hit in index.search(question, 1)
                         if hit.score >= min_score and hit.score >= top_score - FACTS_MARGIN)
        said = re.sub(r"^(?:Yes|No), ", "", answer)
        said = said[0].upper() + said[1:]
        if (said in {fact for _, fact in keyed} and said not in given) or \
                not all(figure in " ".join(given) for figure in NUMBER.findall(answer)):
            continue  # the answer needs a fact the service would not have given: teach nothing from it
        examples.append(Example("order", question, answer, passages, tuple(given), shop_name=shop_name))
    return examples


# -- everything -------------------------------------------------------------------------------------------------

HISTORIES = [((CUSTOMER, "hi"), (ASSISTANT, "Hello! How can I help you today?")),
             ((CUSTOMER, "hello there"), (ASSISTANT, "Hi! What can I do for you?")),
             ((CUSTOMER, "I have a question"), (ASSISTANT, "Of course, go ahead."))]
OTHER_SHOPS = ["Fjord & Co", "Maple Street Store", "Blue Harbour", "Kestrel Outdoor", "Casa Lumen"]


def build_examples(passages: Sequence[Passage], shop_name: str, values: Dict[str, object], encoder, seed: int = 0,
                   hand_file: Path = TUNING_DIR / "answers.yml",
                   unanswerable_file: Path = TUNING_DIR / "unanswerable.yml",
                   order_count: int = 80, extract_per_passage: int = 2, unanswerable_count: int = 40,
                   min_score: float = 0.5, returns: ReturnPolicy | None = None) -> List[Example]:
    """All tuning examples for this shop, shuffled with `seed`."""
    rng = random.Random(seed)
    by_id = {passage.id: passage for passage in passages}
    passage_vectors = encoder.encode([passage.text for passage in passages])

    def ranked(question: str) -> Tuple[str, float]:
        scores = passage_vectors @ encoder.encode([question])[0]
        return passages[int(scores.argmax())].text, float(scores.max())

    def unrelated(passage_id: str) -> str:
        index = [p.id for p in passages].index(passage_id)
        similarity = passage_vectors @ passage_vectors[index]
        far = [passages[i].text for i in range(len(passages)) if similarity[i] < 0.2]
        return rng.choice(far or [p.text for p in passages if p.id != passage_id])

    def with_history(example: Example) -> Example:
        if rng.random() < 0.2:
            return Example(example.kind, example.question, example.answer, example.passages, example.facts,
                           rng.choice(HISTORIES), example.shop_name)
        return example

    examples: List[Example] = []
    hand = load_hand_examples(hand_file, values)
    unknown_ids = sorted({item["passage"] for item in hand} - set(by_id))
    if unknown_ids:
        raise ValueError(f"{hand_file} names passages the knowledge base does not have: {unknown_ids}")
    for item in hand:
        passage = by_id[item["passage"]].text
        examples.append(Example("hand", item["ask"], item["answer"], (passage,), shop_name=shop_name))
        figures = NUMBER.findall(item["answer"])
        if figures and all(figure in passage for figure in figures):
            changed_passage, changed_answer = change_figures(passage, item["answer"], rng)
            examples.append(Example("counterfactual", item["ask"], changed_answer, (changed_passage,),
                                    shop_name=rng.choice(OTHER_SHOPS)))
        if rng.random() < 0.05:
            examples.append(Example("unanswerable", item["ask"], DONT_KNOW_ANSWER, (unrelated(item["passage"]),),
                                    shop_name=shop_name))
    for passage in passages:
        for question in passage_questions(passage)[:extract_per_passage]:
            examples.append(Example("extract", question, closest_sentence(question, passage, encoder),
                                    (passage.text,), shop_name=shop_name))
    # Only questions whose passage the service would pass on (retrieval at or above `min_score`) reach the model;
    # too many "I don't know" examples made the model refuse answerable questions (the first adapter: 1 in 3).
    unanswerable = sorted(((question, *ranked(question)) for question in load_unanswerable(unanswerable_file)),
                          key=lambda item: -item[2])
    for question, passage, _score in unanswerable[:unanswerable_count]:
        examples.append(Example("unanswerable", question, DONT_KNOW_ANSWER, (passage,), shop_name=shop_name))
    examples += order_examples(rng, shop_name, order_count, index_for(passages, encoder), min_score,
                               returns or get_settings().returns)
    examples = [with_history(example) for example in examples]
    rng.shuffle(examples)
    return examples
