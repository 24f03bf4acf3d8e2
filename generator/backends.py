"""Language-model backends behind one interface: a local Hugging Face causal LM, or an OpenAI-compatible server.

`generate` is blocking on purpose: the service runs it in a worker thread, so the action server's event loop
keeps answering other requests. Each call gets an absolute deadline and a cancel event; the local model checks
both after every token, so a reply that runs out of time stops using the CPU at once.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import requests

from generator.config import GeneratorConfig
from generator.prompt import DONT_KNOW_OPENINGS, Prompt

logger = logging.getLogger(__name__)

PLAIN_STOP = "\n"  # a plain-transcript model's reply is one line; the next line is the next speaker
SENTENCE_END = re.compile(r"[.!?][\"')]?\s")


class GenerationError(RuntimeError):
    """The backend could not produce a reply (unreachable server, bad answer, model failure)."""


@dataclass(frozen=True)
class Generation:
    text: str
    new_tokens: int
    seconds: float
    stopped_by: str  # eos | length | stop | deadline | cancelled


class Backend(ABC):
    name: str = "backend"

    @abstractmethod
    def generate(self, prompt: Prompt, max_new_tokens: int, deadline: float,
                 cancel: Optional[threading.Event] = None) -> Generation:
        """Write a reply to `prompt`; stop by `deadline` (time.monotonic()) or when `cancel` is set."""

    def describe(self) -> Dict[str, Any]:
        return {"backend": self.name}


def resolve_dtype(name: str):
    """auto: bfloat16 where the CPU has bf16 instructions (AVX512-BF16 or AMX: reading the prompt is several times
    faster there), float32 elsewhere. Not oneDNN's own check, which also says yes where bf16 is only emulated: on
    such a 2-core Xeon (AVX-512 without BF16) bf16 read a 137-token prompt in 1.40 s, float32 in 0.40 s, and
    decoded no faster (16.6 against 17.1 tokens/s). The same rule as custom_components/encoder.bf16_is_native;
    PyTorch's CPU checks are private, hence the getattr."""
    import torch

    if name == "auto":
        native = any(getattr(torch.cpu, check, lambda: False)()
                     for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        return torch.bfloat16 if native else torch.float32
    return getattr(torch, name)


class LocalCausalLM(Backend):
    """Any AutoModelForCausalLM folder: a chat model through its chat template, GPT-2 through a plain transcript."""

    name = "local"

    def __init__(self, path: Union[Path, str], dtype: str = "auto", threads: int = 1, prompt_format: str = "auto",
                 repetition_penalty: float = 1.0, max_sentences: int = 0, seed: int = 0,
                 adapter: Optional[Path] = None, constrain_numbers: bool = False, allow_dont_know: bool = True):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        started = time.perf_counter()
        self.path = path
        # Local files only: a model id resolves from the Hugging Face cache; serving never downloads anything.
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=resolve_dtype(dtype),
                                                          local_files_only=True).eval()
        self.adapter = self._merge(adapter)
        self.constrain_numbers = constrain_numbers
        self.allow_dont_know = allow_dont_know  # False: a reply may not open with "I'm sorry, I don't know"
        self.load_seconds = time.perf_counter() - started
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.chat = prompt_format == "chat" or (prompt_format == "auto" and has_template)
        self.repetition_penalty = repetition_penalty
        self.max_sentences = max_sentences  # > 0: stop once the reply has this many sentences (saves time)
        self.max_positions = int(getattr(self.model.config, "max_position_embeddings", 0)
                                 or getattr(self.model.config, "n_positions", 0) or 2048)
        eos = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        self._lock = threading.Lock()  # one generation at a time per model
        self._prefix: Optional[Tuple[Any, Any, str]] = None  # token ids, key/value cache and text of the instructions
        logger.info("generator: loaded %s (%s, %s prompt) in %.1f s", self.path, self.model.dtype,
                    "chat" if self.chat else "plain", self.load_seconds)

    def _merge(self, adapter: Optional[Path]) -> Optional[str]:
        """Merge the shop's adapter when it belongs to this model; a mismatch falls back to the base model, loudly."""
        if adapter is None:
            return None
        from generator.adapter import adapter_problem, merge_adapter

        problem = adapter_problem(adapter, Path(self.path))
        if problem:
            logger.warning("generator: adapter %s not used: %s; answering with the base model", adapter, problem)
            return None
        merged = merge_adapter(self.model, adapter)
        logger.info("generator: merged adapter %s (%d weights)", adapter, merged)
        return str(adapter)

    def describe(self) -> Dict[str, Any]:
        return {"backend": self.name, "model": str(self.path), "adapter": self.adapter,
                "constrain_numbers": self.constrain_numbers, "allow_dont_know": self.allow_dont_know,
                "dtype": str(self.model.dtype).replace("torch.", ""), "prompt": "chat" if self.chat else "plain",
                "parameters": self.model.num_parameters()}

    def encode(self, prompt: Prompt):
        if self.chat:
            ids = self.tokenizer.apply_chat_template(prompt.messages(), add_generation_prompt=True,
                                                     return_tensors="pt")
        else:
            ids = self.tokenizer(prompt.plain(), return_tensors="pt").input_ids
        return ids

    def _cached_prefix(self, prompt: Prompt, ids):
        """A copy of the model's keys and values for the instructions' turn, when `ids` starts with it: every
        prompt does, so it is computed once instead of on every reply (a third of a typical prompt's reading time
        on a CPU). None for plain prompts or when the tokens differ (then the whole prompt is read)."""
        if not self.chat:
            return None
        if self._prefix is None or self._prefix[2] != prompt.system:
            prefix_ids = self.tokenizer.apply_chat_template([{"role": "system", "content": prompt.system}],
                                                            return_tensors="pt")
            cache = self.model(prefix_ids, use_cache=True).past_key_values
            self._prefix = (prefix_ids, cache, prompt.system)
        prefix_ids, cache, _ = self._prefix
        length = prefix_ids.shape[1]
        if ids.shape[1] <= length or not self._torch.equal(ids[0, :length], prefix_ids[0]):
            return None
        return copy.deepcopy(cache)

    def generate(self, prompt: Prompt, max_new_tokens: int, deadline: float,
                 cancel: Optional[threading.Event] = None) -> Generation:
        from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

        from generator.constrain import make_logits_processor, make_opening_ban

        torch = self._torch
        cancel = cancel or threading.Event()
        started = time.monotonic()
        ids = self.encode(prompt)
        room = self.max_positions - max_new_tokens
        if ids.shape[1] > room:
            logger.warning("generator: prompt of %d tokens cut to the model's last %d", ids.shape[1], room)
            ids = ids[:, -room:]
        prompt_length = ids.shape[1]
        reason = {"value": ""}
        tokenizer, chat, max_sentences = self.tokenizer, self.chat, self.max_sentences

        class Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                if cancel.is_set():
                    reason["value"] = "cancelled"
                elif time.monotonic() >= deadline:
                    reason["value"] = "deadline"
                else:
                    text = tokenizer.decode(input_ids[0, prompt_length:], skip_special_tokens=True)
                    if (not chat and PLAIN_STOP in text) or (
                            max_sentences and len(SENTENCE_END.findall(text)) >= max_sentences):
                        reason["value"] = "stop"
                return torch.full((input_ids.shape[0],), bool(reason["value"]), dtype=torch.bool)

        processors = LogitsProcessorList()
        if self.constrain_numbers:
            processors.append(make_logits_processor(tokenizer, prompt_length, [*prompt.facts, prompt.system]))
        if not self.allow_dont_know:
            processors.append(make_opening_ban(tokenizer, prompt_length, DONT_KNOW_OPENINGS))
        with self._lock, torch.inference_mode():
            if cancel.is_set() or time.monotonic() >= deadline:
                return Generation("", 0, time.monotonic() - started, "cancelled" if cancel.is_set() else "deadline")
            output = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), past_key_values=self._cached_prefix(prompt, ids),
                max_new_tokens=max_new_tokens, do_sample=False,
                repetition_penalty=self.repetition_penalty, pad_token_id=self.pad_id,
                stopping_criteria=StoppingCriteriaList([Stop()]), logits_processor=processors,
            )
        new = output[0, prompt_length:]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        if not chat:
            text = text.split(PLAIN_STOP, 1)[0]
        stopped_by = reason["value"] or ("length" if len(new) >= max_new_tokens else "eos")
        return Generation(text.strip(), int(len(new)), time.monotonic() - started, stopped_by)


class OpenAICompatible(Backend):
    """POST {api_url}/chat/completions (or /completions for plain-prompt models), as vLLM, llama.cpp's server,
    TGI and OpenAI serve it. The request's timeout is the time left until the deadline."""

    name = "openai"

    def __init__(self, api_url: str, model: str, api_key: str = "", chat: bool = True):
        if not api_url:
            raise ValueError("the openai backend needs an api_url (GENERATOR_API_URL)")
        self.api_url = api_url.rstrip("/")
        self.model = model
        self.chat = chat
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def describe(self) -> Dict[str, Any]:
        return {"backend": self.name, "url": self.api_url, "model": self.model}

    def generate(self, prompt: Prompt, max_new_tokens: int, deadline: float,
                 cancel: Optional[threading.Event] = None) -> Generation:
        started = time.monotonic()
        remaining = deadline - started
        if remaining <= 0 or (cancel is not None and cancel.is_set()):
            return Generation("", 0, 0.0, "deadline" if remaining <= 0 else "cancelled")
        body: Dict[str, Any] = {"model": self.model, "max_tokens": max_new_tokens, "temperature": 0, "stream": False}
        if self.chat:
            url, body["messages"] = f"{self.api_url}/chat/completions", prompt.messages()
        else:
            url, body["prompt"], body["stop"] = f"{self.api_url}/completions", prompt.plain(), [PLAIN_STOP]
        try:
            response = self.session.post(url, json=body, timeout=remaining)
        except requests.Timeout as exc:
            raise TimeoutError(f"{url} did not answer within {remaining:.1f} s") from exc
        except requests.RequestException as exc:
            raise GenerationError(f"{url}: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code != 200:
            raise GenerationError(f"{url} answered {response.status_code}: {response.text[:200]}")
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] if self.chat else choice["text"]
            tokens = int((data.get("usage") or {}).get("completion_tokens") or 0)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise GenerationError(f"{url} sent an answer without choices[0]: {response.text[:200]}") from exc
        stopped_by = "length" if choice.get("finish_reason") == "length" else "eos"
        return Generation(str(text or "").strip(), tokens, time.monotonic() - started, stopped_by)


def make_backend(config: GeneratorConfig) -> Backend:
    """The backend generator.yml and the environment ask for (loads the local model: seconds)."""
    if config.backend == "openai":
        return OpenAICompatible(config.api_url, config.api_model, config.api_key,
                                chat=config.prompt_format != "plain")
    if config.model_path:
        path = Path(config.model_path).expanduser()
        if path.exists() and not (path / "config.json").exists():
            raise GenerationError(f"GENERATOR_MODEL_PATH {path} holds no model (config.json missing)")
        # Not a folder: a model id ("gpt2", "distilgpt2") that transformers finds in the local Hugging Face cache.
        path = path if path.exists() else config.model_path
    else:
        from generator.prepare import ensure_prepared

        path = ensure_prepared(config)
    return LocalCausalLM(path, config.dtype, config.threads, config.prompt_format, config.repetition_penalty,
                         config.max_sentences, adapter=config.adapter_dir, constrain_numbers=config.constrain_numbers,
                         allow_dont_know=config.trust_dont_know)
