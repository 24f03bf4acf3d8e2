"""Shared pieces for the generator's tests: the real knowledge base (encoded once per session), scripted
backends that stand in for a model, and the two real local models (SmolLM2 from the cache, a tiny GPT-2)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

import pytest

from generator.backends import Backend, Generation, LocalCausalLM
from generator.config import GeneratorConfig, get_config
from generator.prompt import Prompt
from generator.retrieval import KnowledgeIndex, get_index
from generator.service import ReplyService

Script = Union[str, Callable[[Prompt], str]]


class ScriptedBackend(Backend):
    """A model that says what the test tells it to (a string, or a function of the prompt), records every prompt,
    and can be slow or broken."""

    name = "scripted"

    def __init__(self, script: Script = "", delay_s: float = 0.0, error: Optional[Exception] = None):
        self.script, self.delay_s, self.error = script, delay_s, error
        self.prompts: List[Prompt] = []
        self.deadlines: List[float] = []
        self.cancels: List[threading.Event] = []

    def generate(self, prompt: Prompt, max_new_tokens: int, deadline: float,
                 cancel: Optional[threading.Event] = None) -> Generation:
        self.prompts.append(prompt)
        self.deadlines.append(deadline)
        self.cancels.append(cancel)
        started = time.monotonic()
        if self.delay_s:
            time.sleep(self.delay_s)  # blocks its thread like a real model does
        if self.error is not None:
            raise self.error
        text = self.script(prompt) if callable(self.script) else self.script
        return Generation(text, len(text.split()), time.monotonic() - started, "eos")


@pytest.fixture(scope="session")
def index() -> KnowledgeIndex:
    return get_index()


@pytest.fixture
def make_service(index):
    """A ReplyService on the real knowledge base with the given backend and configuration changes."""

    def build(backend: Backend, **changes) -> ReplyService:
        config: GeneratorConfig = replace(get_config(), **changes)
        return ReplyService(config, index_factory=lambda: index, backend_factory=lambda _config: backend)

    return build


@pytest.fixture(scope="session")
def smollm2() -> LocalCausalLM:
    """The real default model, from the cache scripts/setup.sh fills (converted here first if it is missing)."""
    from generator.prepare import ensure_prepared

    config = get_config()
    return LocalCausalLM(ensure_prepared(config), config.dtype, config.threads, max_sentences=config.max_sentences)


@pytest.fixture(scope="session")
def shop_model() -> LocalCausalLM:
    """The model as generator.yml ships it: SmolLM2 with the shop's adapter merged and numbers constrained."""
    from generator.backends import make_backend

    return make_backend(get_config())


def tiny_tokenizer(corpus: Sequence[str]):
    """A byte-level BPE tokenizer trained in a moment on `corpus`, wrapped as GPT-2's tokenizer (no download)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    return GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                             eos_token="<|endoftext|>", unk_token="<|endoftext|>")


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, index) -> Path:
    """A randomly initialised two-layer GPT-2 with its tokenizer, saved like any GPT-2 checkpoint folder."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer([passage.text for passage in index.passages] * 3)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=1024, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
