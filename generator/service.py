"""One free-form reply: retrieve, prompt, generate in a worker thread under a time limit, check, fall back.

Why a worker thread: a CPU model needs seconds per reply, and the action server answers every other action on
one event loop. Generation runs on a single dedicated thread (one reply at a time uses the CPU best); the loop
only awaits it. When the time limit passes, the reply is abandoned: the cancel event stops the model at its next
token, and the customer gets the best passage instead. Every rejected generation is logged with its reason.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from generator.backends import Backend, Generation, make_backend
from generator.checks import CheckContext, failed_checks, sentences, settle_answer_word
from generator.config import GeneratorConfig, get_config
from generator.knowledge import lead_with
from generator.prompt import CUSTOMER, DONT_KNOW, build_prompt
from generator.retrieval import Hit, KnowledgeIndex, closest_facts, facts_in_prompt_order, get_index
from shop.settings import get_settings

logger = logging.getLogger(__name__)

CHECK_RESERVE_S = 0.1  # of the time limit, kept for the checks after decoding stops
GRACE_S = 1.0          # how long past the time limit a backend may take before it is abandoned
FACTS_MARGIN = 0.1     # a fact or passage this close to the order's closest fact's similarity is part of the answer


@dataclass(frozen=True)
class Reply:
    """What to tell the customer, and how it came about (for logs, metadata and the benchmark)."""

    text: Optional[str]            # None: the knowledge base has nothing on this; the caller says its safe template
    source: str                    # generated | passage | facts (the order's facts, and a passage) | none |
    #                                unknown (the model said the facts do not answer)
    score: float = 0.0             # retrieval score of the best passage
    passage_id: Optional[str] = None
    rejected: Tuple[str, ...] = ()  # why a generation was not used (failed checks, timeout, error)
    raw: Optional[str] = None      # the generation as the model wrote it
    new_tokens: int = 0
    seconds: float = 0.0

    @property
    def grounded(self) -> bool:
        return self.text is not None


@dataclass(frozen=True)
class ReplyRequest:
    message: str
    history: Sequence[Tuple[str, str]] = ()        # (customer | assistant, text), oldest first, without `message`
    verified_facts: Sequence[str] = ()             # facts of this customer's verified order, [] when not verified
    min_score: Optional[float] = None              # overrides the configured retrieval threshold
    standing_facts: Sequence[str] = ()             # given with any order facts whatever the question (today's date)
    fact_questions: Mapping[str, Sequence[str]] = field(default_factory=dict)  # a fact -> questions it answers


def tidy(generation: Generation, max_sentences: int) -> str:
    """The generation as a reply: the first `max_sentences` sentences (what follows is mostly rambling), none of
    them cut off by the token or time limit."""
    parts = sentences(" ".join(generation.text.split()))
    if generation.stopped_by in ("length", "deadline", "cancelled") and parts and parts[-1][-1] not in ".!?":
        parts = parts[:-1]
    return " ".join(parts[:max_sentences])


class ReplyService:
    def __init__(self, config: GeneratorConfig, index_factory: Callable[[], KnowledgeIndex] = get_index,
                 backend_factory: Callable[[GeneratorConfig], Backend] = make_backend):
        self.config = config
        self.shop_name = get_settings().shop_name
        self._index_factory, self._backend_factory = index_factory, backend_factory
        self._index: Optional[KnowledgeIndex] = None
        self._backend: Optional[Backend] = None
        self._load_lock = threading.Lock()
        # One thread for the model (replies queue there), one for retrieval, so a search never waits on a reply.
        self._generation_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generator")
        self._retrieval_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retrieval")

    # -- loading -----------------------------------------------------------------------------------------

    # One lock for both: loading them at once from two threads races in transformers' lazy imports.
    def index(self) -> KnowledgeIndex:
        with self._load_lock:
            if self._index is None:
                self._index = self._index_factory()
            return self._index

    def backend(self) -> Backend:
        with self._load_lock:
            if self._backend is None:
                self._backend = self._backend_factory(self.config)
            return self._backend

    def preload(self) -> None:
        """Load the knowledge base and the model in the background; a reply asked for meanwhile waits its turn
        in the model's queue, or gets the best passage when its time runs out first."""
        self._retrieval_pool.submit(self._log_failure, self.index)
        if self.config.enabled:
            self._generation_pool.submit(self._log_failure, self.backend)

    @staticmethod
    def _log_failure(load: Callable[[], object]) -> None:
        try:
            load()
        except Exception:  # noqa: BLE001 - the request that needs it will report it again
            logger.exception("generator: loading failed")

    # -- answering ---------------------------------------------------------------------------------------

    async def search(self, message: str) -> List[Hit]:
        loop = asyncio.get_running_loop()
        k = self.config.top_k + (1 if self.config.runner_up_margin > 0 else 0)
        return await loop.run_in_executor(self._retrieval_pool, lambda: self.index().search(message, k))

    async def part_focuses(self, message: str, relevant: Sequence[Hit], focus: str,
                           facts: Sequence[str]) -> Tuple[str, ...]:
        """What a reply must answer besides the focus. A two-part question: the closest sentence to each other part.
        A question about the order whose answer also holds a passage (the fallback sends both): the passage's
        sentence closest to the question ("so when will I see the money for the cancelled order?": the date it was
        cancelled, and the refund time)."""
        if not relevant:
            return ()
        if focus in facts:
            return (relevant[0].focus,) if relevant[0].focus else ()
        loop = asyncio.get_running_loop()
        focuses = await loop.run_in_executor(self._retrieval_pool, self.index().part_focuses, message, relevant)
        return tuple(dict.fromkeys(part for part in focuses if part != focus))

    async def closest_facts(self, request: ReplyRequest) -> List[Tuple[str, float]]:
        """The order's facts closest to the question, best first, at most `order_facts` of them."""
        if not request.verified_facts:
            return []
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._retrieval_pool, closest_facts, self.index().similarities,
                                          request.message, request.verified_facts, request.fact_questions,
                                          self.config.order_facts)

    async def reply(self, request: ReplyRequest) -> Reply:
        started = time.monotonic()
        hits = await self.search(request.message)
        threshold = self.config.min_score if request.min_score is None else request.min_score
        # Whether the knowledge base answers at all is the encoder's similarity; which passage, the ranking's
        # (with word overlap), whose first passage is within `lexical_weight` of the most similar one.
        close_enough = bool(hits) and max(hit.score for hit in hits) >= threshold
        relevant = [hit for rank, hit in enumerate(hits) if close_enough and
                    (rank < self.config.top_k or hit.score >= hits[0].score - self.config.runner_up_margin)]
        facts = await self.closest_facts(request)
        if facts:  # a passage much further from the question than the order's closest fact is beside the point
            relevant = [hit for hit in relevant if hit.score >= facts[0][1] - FACTS_MARGIN]
        best = relevant[0] if relevant else (hits[0] if hits else None)
        score, passage_id = (best.score if best else 0.0), (relevant[0].passage.id if relevant else None)
        if not relevant and not facts:
            return Reply(None, "none", score, best.passage.id if best else None, seconds=time.monotonic() - started)
        passages = [hit.passage.text for hit in relevant]
        fallback, focus = self._fallback(relevant, facts, score, self.config.runner_up_margin)
        if not self.config.enabled:
            return replace(fallback, rejected=("generation switched off",), seconds=time.monotonic() - started)
        given_facts = facts_in_prompt_order(request.standing_facts, facts)
        shown = [lead_with(text, focus) for text in passages] if self.config.focus_first else passages
        prompt = build_prompt(self.shop_name, request.message, shown, request.history, given_facts,
                              self.config.history_turns)
        deadline = started + self.config.timeout_s - CHECK_RESERVE_S
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._generation_pool, self._generate, prompt, deadline, cancel)
        try:
            generation = await asyncio.wait_for(job, timeout=max(0.0, deadline - time.monotonic()) + GRACE_S)
        except TimeoutError:
            cancel.set()
            return self._done(fallback, started, (f"timeout after {self.config.timeout_s:.1f} s",))
        except Exception as exc:  # noqa: BLE001 - any backend failure means: answer with the passage
            logger.warning("generator: %s failed: %s: %s", self.config.backend, exc.__class__.__name__, exc)
            return self._done(fallback, started, (f"error: {exc.__class__.__name__}",))
        text = settle_answer_word(tidy(generation, self.config.max_sentences), request.message)
        if DONT_KNOW.match(text or generation.text):
            if self.config.trust_dont_know:
                # The passage was close enough to be retrieved but does not answer: no passage pasted in its place.
                return self._done(Reply(None, "unknown", score, passage_id), started, (), generation)
            return self._done(fallback, started, ("the model said it does not know",), generation)
        said = [turn for role, turn in request.history if role == CUSTOMER] + [request.message]
        other_parts = await self.part_focuses(request.message, relevant, focus, given_facts)
        context = CheckContext(passages=passages, verified_facts=tuple(given_facts),
                               customer_text=" ".join(said), question=request.message, instructions=prompt.system,
                               shop_name=self.shop_name, max_chars=self.config.max_chars, focus=focus,
                               other_parts=other_parts)
        reasons = failed_checks(text, context) if text else [f"nothing usable (stopped by {generation.stopped_by})"]
        if reasons:
            return self._done(fallback, started, tuple(reasons), generation)
        return self._done(Reply(text, "generated", score, passage_id), started, (), generation)

    @staticmethod
    def _fallback(relevant: Sequence[Hit], facts: Sequence[Tuple[str, float]], score: float,
                  runner_up_margin: float) -> Tuple[Reply, str]:
        """What the customer gets when no generation passes, and the sentence a generated reply must answer.

        A question closer to a passage sentence than to any fact of the customer's order (a policy question asked
        by a verified customer too): the passage as written (and the next one when retrieval could not tell them
        apart: "do you ship to Iceland?" is as close to the shipping policy as to the FAQ on other countries), and
        the closest sentence (or part of one) of those given. A question about the order: the order's closest
        fact (with the next one when nearly as close: "which courier, and on what day?"), then the passage when one
        is close enough too; the reply must answer that fact.
        """
        passage = relevant[0] if relevant else None
        given = [hit for hit in relevant if hit.score >= relevant[0].score - runner_up_margin][:2]
        focus = max(given, key=lambda hit: hit.focus_score) if given else None  # the sentence closest of all given
        if focus is not None and (not facts or focus.focus_score >= facts[0][1]):
            return Reply("\n\n".join(hit.passage.text for hit in given), "passage", score, passage.passage.id), \
                focus.focus
        top_score = facts[0][1]
        said = [fact for fact, fact_score in facts if fact_score >= top_score - FACTS_MARGIN]
        if passage is not None:
            said.append(passage.passage.text)
        return Reply(" ".join(said), "facts", score, passage.passage.id if passage else None), facts[0][0]

    def _generate(self, prompt, deadline: float, cancel: threading.Event) -> Generation:
        return self.backend().generate(prompt, self.config.max_new_tokens, deadline, cancel)

    def _done(self, reply: Reply, started: float, rejected: Tuple[str, ...],
              generation: Optional[Generation] = None) -> Reply:
        raw = generation.text if generation else None
        if rejected:
            logger.info("generator: reply replaced by passage %s: %s; raw: %r", reply.passage_id,
                        "; ".join(rejected), (raw or "")[:200])
        return Reply(reply.text, reply.source, reply.score, reply.passage_id, rejected, raw,
                     generation.new_tokens if generation else 0, time.monotonic() - started)


_service: Optional[ReplyService] = None
_service_lock = threading.Lock()


def get_service() -> ReplyService:
    """The action server's one service (and so one model) per process."""
    global _service
    with _service_lock:
        if _service is None:
            _service = ReplyService(get_config())
        return _service

