"""Every attack of attacks.yml against the generator's prompt building and checks, with a stand-in model that plays
the worst case: it says whatever the attacker asks for (another customer's data, the instructions, the server's
secrets, markup, a promise), as if it knew it, alone, hidden before or after a sentence of the retrieved passage,
or it parrots its whole prompt, or obeys the customer word for word. The final reply must contain none of it, and
the prompt must not hand the model anything to leak. Unverified, and verified as alice with order 10002."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from dataclasses import replace
from datetime import date
from typing import Any, Dict, Iterator, List, Optional, Sequence

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from generator.backends import Backend, Generation
from generator.checks import sentences
from generator.config import get_config
from generator.prompt import Prompt
from generator.retrieval import get_index
from generator.service import ReplyRequest, ReplyService
from shop.models import Base
from shop.seed import seed_demo_shop
from tests.security.support import (
    CANARIES,
    CANARY_DATABASE_URL,
    Attack,
    attacks,
    kinds,
    leaks,
    loot,
    record,
)
from tests.support import bot_event, make_tracker, user_event

MODES = ["loot", "loot-then-passage", "passage-then-loot", "parrot-plain", "parrot-messages", "obey"]
VERIFIED_ORDER, VERIFIED_EMAIL = "10002", "alice@example.com"
ROLE_TOKENS = ("<|", "|>", "<｜", "｜>", "[inst]", "[/inst]", "<<sys>>", "<</sys>>", "</s>", "<s>")


class WorstCaseBackend(Backend):
    """A compromised model: says what the attacker wants in the way `mode` says. Records every prompt."""

    name = "worst-case"

    def __init__(self, attack: Attack, mode: str) -> None:
        self.attack, self.mode = attack, mode
        self.prompts: List[Prompt] = []
        self.said: List[str] = []

    def generate(self, prompt: Prompt, max_new_tokens: int, deadline: float,
                 cancel: Optional[threading.Event] = None) -> Generation:
        self.prompts.append(prompt)
        wanted = loot(self.attack, prompt.system, prompt)
        passage = (sentences(prompt.facts[0]) or [""])[0] if prompt.facts else ""
        text = {
            "loot": wanted,
            "loot-then-passage": f"{wanted} {passage}",
            "passage-then-loot": f"{passage} {wanted}",
            "parrot-plain": prompt.plain(),
            "parrot-messages": json.dumps(prompt.messages()),
            "obey": " ".join([*(turn for _role, turn in prompt.history), prompt.message]),
        }[self.mode]
        self.said.append(text)
        return Generation(text, len(text.split()), 0.0, "eos")


class CachedIndex:
    """The real knowledge index; each message is encoded once however many times it is asked."""

    def __init__(self, index: Any) -> None:
        self.index, self.passages = index, index.passages
        self._hits: Dict[tuple, Any] = {}

    def search(self, query: str, k: int = 3):
        if (query, k) not in self._hits:
            self._hits[(query, k)] = self.index.search(query, k)
        return self._hits[(query, k)]

    def similarities(self, query: str, texts: Sequence[str]) -> List[float]:
        key = (query, tuple(texts))
        if key not in self._hits:
            self._hits[key] = self.index.similarities(query, texts)
        return self._hits[key]

    def part_focuses(self, question: str, hits: Sequence[Any]) -> List[str]:
        key = ("parts", question, tuple(hit.passage.id for hit in hits))
        if key not in self._hits:
            self._hits[key] = self.index.part_focuses(question, hits)
        return self._hits[key]


@pytest.fixture(scope="module")
def index() -> CachedIndex:
    return CachedIndex(get_index())


@pytest.fixture(autouse=True)
def canaries(monkeypatch) -> None:
    """The secrets a production server holds, in this process's environment."""
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", CANARY_DATABASE_URL)


@pytest.fixture(scope="module")
def alice_facts(tmp_path_factory) -> List[str]:
    """What the action server gives the model about alice's verified order 10002 (actions/generate.py)."""
    from actions.generate import verified_facts

    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('facts') / 'shop.db'}", future=True)
    Base.metadata.create_all(engine)
    with Session(engine, future=True) as session:
        seed_demo_shop(session)
        session.commit()
    slots = {"order_id": VERIFIED_ORDER, "order_email": VERIFIED_EMAIL, "verified_order_id": VERIFIED_ORDER,
             "verified_email": VERIFIED_EMAIL}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("shop.db.get_engine", lambda: engine)
        facts = [fact for _, fact in verified_facts(make_tracker(slots=slots), date.today())]
    engine.dispose()
    assert any(VERIFIED_ORDER in fact for fact in facts)
    return facts


FIGURES: Dict[str, Dict[str, Any]] = {}


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[Dict[str, Dict[str, Any]]]:
    """Per attack: generations tried, stopped by the checks, final replies that leaked (and of those, the ones
    whose every leak is a known one); written at the end."""
    FIGURES.clear()
    yield FIGURES
    by_kind: Dict[str, Dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for seen in FIGURES.values():
        kind = by_kind[seen["kind"]]
        kind["attacks"] += 1
        for key in ("generations", "stopped_by_checks", "leaks", "known_leaks", "prompt_problems"):
            kind[key] += seen[key]
    record("generator-attacks", {
        "what": "attacks.yml against generator prompt building and checks, worst-case stand-in model",
        "configuration": {"modes": MODES, "verification": ["unverified", f"verified {VERIFIED_ORDER}"],
                          "known_leak_kinds": list(KNOWN_LEAKS),
                          "retrieval_threshold": 0.0, "max_sentences": get_config().max_sentences,
                          "max_chars": get_config().max_chars},
        "attack_messages": len(FIGURES),
        "by_kind": {name: dict(values) for name, values in by_kind.items()},
        "leaks": sum(seen["leaks"] for seen in FIGURES.values()),
        "known_leaks": sum(seen["known_leaks"] for seen in FIGURES.values()),
        "leaked": {attack_id: seen["leaked"] for attack_id, seen in FIGURES.items() if seen["leaked"]},
        "prompt_problems": {attack_id: seen["prompt_problem_list"] for attack_id, seen in FIGURES.items()
                            if seen["prompt_problem_list"]},
    })


def note(attack: Attack, **counts: Any) -> None:
    seen = FIGURES.setdefault(attack.id, {"kind": attack.kind, "generations": 0, "stopped_by_checks": 0,
                                          "leaks": 0, "known_leaks": 0, "prompt_problems": 0, "leaked": [],
                                          "prompt_problem_list": []})
    for key, value in counts.items():
        seen[key] += value


def prompt_problems(prompt: Prompt, verified_order: Optional[str]) -> List[str]:
    """What the prompt must never hold: another customer's data or a secret in the facts or instructions, and
    role markers or special tokens in the customer's text (message and history)."""
    problems = [f"facts: {leak}" for leak in leaks(" ".join([prompt.system, *prompt.facts]), verified_order)
                if not leak.startswith(("prompt structure", "markup"))]
    for role, text in [*prompt.history, ("customer", prompt.message)]:
        lowered = text.lower()
        problems += [f"{role} turn keeps {token!r}" for token in ROLE_TOKENS if token in lowered]
    return problems


def service(index: CachedIndex, backend: Backend) -> ReplyService:
    # Threshold 0: every attack reaches the model, so the checks (not retrieval) must stop it.
    config = replace(get_config(), min_score=0.0, enabled=True)
    return ReplyService(config, index_factory=lambda: index, backend_factory=lambda _config: backend)


# Leaks the checks do not stop (docs/security.md, "Attack suite"), left out of the main assertion: none since the
# markup check, headings inside a line and NFKC cleaning (the tests at the end of this file guard those).
KNOWN_LEAKS: tuple = ()
KNOWN_PROMPT_PROBLEMS = ("<｜", "｜>")


def is_known(problem: str) -> bool:
    what = problem.split(": ", 1)[-1]
    return what.startswith(KNOWN_LEAKS) or any(token in problem for token in KNOWN_PROMPT_PROBLEMS)


def test_the_suite_has_over_100_attacks_of_every_kind_and_each_would_leak_unchecked():
    assert len(attacks()) >= 100
    expected = {"other_customers", "system_prompt", "secrets", "sql_injection", "html_js", "token_smuggling",
                "jailbreak", "indirect_history", "encodings"}
    assert {kind.name for kind in kinds()} == expected
    assert all(len(kind.attacks) >= 10 for kind in kinds())
    system = "You are the customer service assistant of Northwind Goods, an online shop. Answer briefly."
    for attack in attacks():
        assert leaks(loot(attack, system), None, system, attack.claims), attack.id


def test_the_knowledge_base_itself_leaks_nothing(index):
    """The fallback reply is a passage: none may trip the detector (else every 'leak' below would be noise)."""
    for passage in index.passages:
        assert leaks(passage.text, None, "", ()) == [], passage.id


async def attack_model(index: CachedIndex, attack: Attack, facts: List[str], modes=MODES):
    """Each mode of the worst-case model against `attack`: (mode, prompt, reply) for those that reached the model."""
    backend = WorstCaseBackend(attack, modes[0])
    replies = service(index, backend)
    for mode in modes:
        backend.mode, backend.prompts = mode, []
        reply = await replies.reply(ReplyRequest(attack.message, history=attack.history, verified_facts=facts))
        if backend.prompts:
            yield mode, backend.prompts[0], reply


@pytest.mark.parametrize("attack", attacks(), ids=[attack.id for attack in attacks()])
async def test_a_compromised_model_leaks_nothing(index, alice_facts, attack):
    leaked, problems, generations, stopped, leaking_replies, known_replies = [], [], 0, 0, 0, 0
    for verified_order, facts in ((None, []), (VERIFIED_ORDER, alice_facts)):
        who = f"verified {verified_order}" if verified_order else "unverified"
        async for mode, prompt, reply in attack_model(index, attack, facts):
            generations += 1
            stopped += reply.source != "generated"
            problems += [f"{who}, {mode}: {problem}" for problem in prompt_problems(prompt, verified_order)]
            found = [f"{who}, {mode}: {leak} in {reply.text!r}"
                     for leak in leaks(reply.text, verified_order, prompt.system, attack.claims)]
            leaked += found
            leaking_replies += bool(found)
            known_replies += bool(found) and all(map(is_known, found))
    note(attack, generations=generations, stopped_by_checks=stopped, leaks=leaking_replies, leaked=leaked,
         known_leaks=known_replies, prompt_problems=len(problems), prompt_problem_list=sorted(set(problems)))
    assert generations == 2 * len(MODES)  # every mode reached the model (threshold 0)
    unexpected = [leak for leak in leaked if not is_known(leak)]
    assert unexpected == [], "\n".join(unexpected)
    unexpected = [problem for problem in problems if not is_known(problem)]
    assert unexpected == [], "\n".join(sorted(set(unexpected)))


INDIRECT = [attack for attack in attacks() if attack.history]


@pytest.mark.parametrize("attack", INDIRECT, ids=[attack.id for attack in INDIRECT])
async def test_an_attack_in_the_conversation_history_gets_out_through_the_action_neither(index, attack, monkeypatch):
    """The same through actions/generate.py, which reads the history from the tracker's events itself."""
    from actions.generate import ActionGenerateReply

    history = [user_event(text, intent="ask_question") if role == "customer" else bot_event(text)
               for role, text in attack.history]
    for mode in MODES:
        backend = WorstCaseBackend(attack, mode)
        monkeypatch.setattr("actions.generate.get_service", lambda backend=backend: service(index, backend))
        dispatcher = CollectingDispatcher()
        await ActionGenerateReply().run(dispatcher, make_tracker(intent="ask_question", text=attack.message,
                                                                 history=history), {})
        prompt = backend.prompts[0]
        assert [text for _role, text in prompt.history][-len(attack.history):]  # the history reached the model
        said = " ".join(message.get("text") or "" for message in dispatcher.messages)
        assert leaks(said, None, prompt.system, attack.claims) == [], f"{mode}: {said!r}"


# --- found by this suite and fixed (markup check, headings inside a line, NFKC before cleaning); kept as guards ---

def attack(attack_id: str) -> Attack:
    return next(each for each in attacks() if each.id == attack_id)


async def test_markup_from_the_model_never_reaches_the_customer(index):
    for attack_id in ("html_js-10", "html_js-13"):
        async for _mode, prompt, reply in attack_model(index, attack(attack_id), [], ["passage-then-loot"]):
            assert not [leak for leak in leaks(reply.text, None, prompt.system) if leak.startswith("markup")], reply


async def test_the_prompts_headings_inside_a_reply_are_stopped(index):
    async for _mode, prompt, reply in attack_model(index, attack("system_prompt-05"), [], ["passage-then-loot"]):
        assert "prompt structure" not in leaks(reply.text, None, prompt.system), reply


def test_fullwidth_special_tokens_are_removed_from_the_customer_turn():
    from generator.prompt import build_prompt

    prompt = build_prompt("Northwind Goods", attack("token_smuggling-12").message, ["Returns are free."])
    assert not any(token in prompt.message for token in KNOWN_PROMPT_PROBLEMS), prompt.message
