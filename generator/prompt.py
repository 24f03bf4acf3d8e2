"""The prompt: fixed instructions, the retrieved passages, verified facts, recent turns, the customer's message.

Customer text is data, never instructions: it only ever goes into customer turns, and anything in it that could
pass for a role marker or a model's special token (`<|im_start|>system`, `Assistant:`, `[INST]`) is removed
first, so a message cannot open a turn of its own or close the customer's.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

CUSTOMER, ASSISTANT = "customer", "assistant"
MAX_TURN_CHARS = 400
SPECIAL_TOKEN = re.compile(r"<\|?/?[A-Za-z_]{1,20}(\|>|>)|<\|[^|>]{0,40}\|>|\[/?INST\]|<</?SYS>>|</?s>", re.I)
ROLE_PREFIX = re.compile(r"(^|\n)\s*(#+\s*)?(system|assistant|user|customer|bot|human|ai|instruction|response)\s*:",
                         re.I)

INSTRUCTIONS = (
    "You are the customer service assistant of {shop_name}, an online shop. Answer the customer briefly and "
    "kindly, using only the given facts. Never add a number, date, price, name or promise that is not in the facts. "
    "If the facts do not answer the question, say: I'm sorry, I don't know that."
)
# What the model says when the facts do not answer (the tuning data teaches it); the service then gives the
# customer the shop's own "I don't know" reply with the offer of a person.
DONT_KNOW_ANSWER = "I'm sorry, I don't know that."
# How the model begins it. A local model whose "I don't know" is not trusted (generator.yml `trust_dont_know`) may
# not begin a reply so: it answers from the passage instead, and the checks decide.
DONT_KNOW_OPENINGS = (DONT_KNOW_ANSWER, "Sorry, I don't know that.")
DONT_KNOW = re.compile(r"^\W*(?:i'?m\s+)?(?:sorry,?\s*)?(?:but\s+)?i (?:do not|don't|dont) know\b", re.I)


def clean(text: str, limit: int = MAX_TURN_CHARS) -> str:
    """Customer or history text made inert: no special tokens, no role prefixes, one line, bounded length."""
    # NFKC first: fullwidth look-alikes ("<｜User｜>", DeepSeek-style special tokens) become the ASCII they mimic.
    text = SPECIAL_TOKEN.sub(" ", unicodedata.normalize("NFKC", text or ""))
    text = ROLE_PREFIX.sub(r"\1 ", text)
    text = " ".join(text.split())
    return text[:limit].rstrip()


@dataclass(frozen=True)
class Prompt:
    """Everything the model sees, renderable as chat messages or as a plain transcript (for GPT-2).

    The facts go into the last customer turn, right before the question: small models heed them there far
    more than in the system prompt."""

    system: str
    facts: Tuple[str, ...]
    history: Tuple[Tuple[str, str], ...]  # (role, text) before the message, oldest first
    message: str

    @property
    def question(self) -> str:
        facts = "\n".join(f"- {fact}" for fact in self.facts) or "- (none)"
        return f"Facts:\n{facts}\n\nQuestion: {self.message}"

    def messages(self) -> List[Dict[str, str]]:
        roles = {CUSTOMER: "user", ASSISTANT: "assistant"}
        return [{"role": "system", "content": self.system},
                *({"role": roles[role], "content": text} for role, text in self.history),
                {"role": "user", "content": self.question}]

    def plain(self) -> str:
        names = {CUSTOMER: "Customer", ASSISTANT: "Assistant"}
        facts = "\n".join(f"- {fact}" for fact in self.facts) or "- (none)"
        lines = [self.system, "", "Facts:", facts, ""] + [f"{names[role]}: {text}" for role, text in self.history]
        return "\n".join([*lines, f"Customer: {self.message}", "Assistant:"])


def build_prompt(
    shop_name: str,
    message: str,
    passages: Sequence[str],
    history: Sequence[Tuple[str, str]] = (),
    verified_facts: Optional[Sequence[str]] = None,
    history_turns: int = 4,
) -> Prompt:
    """The prompt for `message`. `history` holds (role, text) pairs before it, oldest first; only the last
    `history_turns` are kept. `verified_facts` are facts about the customer's own, verified order."""
    facts = [clean(passage, 2000) for passage in passages]
    if verified_facts:
        facts += [clean(fact, 300) for fact in verified_facts]  # sentences that name the order (shop/orders.py)
    kept = [(role, clean(text)) for role, text in history if role in (CUSTOMER, ASSISTANT)]
    kept = [(role, text) for role, text in kept if text][-history_turns:] if history_turns > 0 else []
    return Prompt(INSTRUCTIONS.format(shop_name=shop_name), tuple(facts), tuple(kept), clean(message) or "(empty)")
