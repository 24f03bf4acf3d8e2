"""The backends on real code paths: SmolLM2 (the default), a GPT-2 checkpoint, and an OpenAI-compatible server
(a local stand-in on a free port)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Iterator, List

import pytest

from generator.backends import GenerationError, LocalCausalLM, OpenAICompatible, make_backend, resolve_dtype
from generator.config import load_config
from generator.prompt import build_prompt
from generator.service import ReplyRequest

PROMPT = build_prompt("Northwind Goods", "do you ship to Norway?",
                      ["We ship within the EU, the UK, Norway and Switzerland."])


def far() -> float:
    return time.monotonic() + 60


def test_smollm2_writes_a_short_reply(smollm2):
    generation = smollm2.generate(PROMPT, max_new_tokens=8, deadline=far())
    assert smollm2.chat and smollm2.describe()["parameters"] > 100_000_000
    assert 0 < generation.new_tokens <= 8 and generation.text.strip()
    assert generation.stopped_by in ("eos", "length", "stop")


def test_the_cached_instructions_change_nothing_in_what_smollm2_writes(smollm2, monkeypatch):
    other = build_prompt("Northwind Goods", "how much is express shipping?",
                         ["Express shipping takes 1-2 business days and costs 12.95."])
    cached = [smollm2.generate(prompt, 12, far()).text for prompt in (PROMPT, other, PROMPT)]
    assert smollm2._prefix is not None  # the instructions' keys and values were kept
    monkeypatch.setattr(smollm2, "_cached_prefix", lambda prompt, ids: None)
    assert cached == [smollm2.generate(prompt, 12, far()).text for prompt in (PROMPT, other, PROMPT)]


def test_smollm2_stops_at_the_deadline_and_when_cancelled(smollm2):
    assert smollm2.generate(PROMPT, 8, deadline=time.monotonic() - 1).stopped_by == "deadline"
    cancel = threading.Event()
    cancel.set()
    assert smollm2.generate(PROMPT, 8, far(), cancel).stopped_by == "cancelled"


def test_a_gpt2_checkpoint_loads_through_automodel_and_generates(tiny_gpt2_dir):
    backend = make_backend(load_config(environ={"GENERATOR_MODEL_PATH": str(tiny_gpt2_dir),
                                                "GENERATOR_DTYPE": "float32"}))
    assert isinstance(backend, LocalCausalLM) and backend.model.config.model_type == "gpt2"
    assert not backend.chat  # no chat template: the plain transcript
    ids = backend.encode(PROMPT)
    assert backend.tokenizer.decode(ids[0]).endswith("Customer: do you ship to Norway?\nAssistant:")
    generation = backend.generate(PROMPT, max_new_tokens=6, deadline=far())
    assert generation.new_tokens <= 6 and "\n" not in generation.text
    assert generation.stopped_by in ("eos", "length", "stop")


def test_a_model_path_without_a_model_is_refused(tmp_path):
    with pytest.raises(GenerationError, match="config.json"):
        make_backend(load_config(environ={"GENERATOR_MODEL_PATH": str(tmp_path)}))


def test_a_model_id_is_looked_up_in_the_local_hugging_face_cache_only():
    with pytest.raises(OSError, match="cached files"):  # not cached here, and the hub is never asked
        make_backend(load_config(environ={"GENERATOR_MODEL_PATH": "distilgpt2"}))


class StandIn(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that records requests and answers as the test tells it."""

    requests: List[Dict] = []
    answer: Dict = {}
    status = 200
    delay_s = 0.0

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        time.sleep(self.delay_s)
        payload = json.dumps(self.answer).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def stand_in() -> Iterator[str]:
    StandIn.requests, StandIn.status, StandIn.delay_s = [], 200, 0.0
    StandIn.answer = {"choices": [{"message": {"role": "assistant", "content": "Yes, we ship to Norway."},
                                   "finish_reason": "stop"}], "usage": {"completion_tokens": 7}}
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def openai_backend(url: str) -> OpenAICompatible:
    backend = make_backend(load_config(environ={"GENERATOR_BACKEND": "openai", "GENERATOR_API_URL": url,
                                                "GENERATOR_API_MODEL": "smollm2", "GENERATOR_API_KEY": "sk-test"}))
    assert isinstance(backend, OpenAICompatible)
    return backend


def test_the_http_backend_posts_chat_completions_with_key_and_limits(stand_in):
    generation = openai_backend(stand_in).generate(PROMPT, max_new_tokens=60, deadline=far())
    assert generation.text == "Yes, we ship to Norway." and generation.new_tokens == 7
    request = StandIn.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    body = request["body"]
    assert body["model"] == "smollm2" and body["max_tokens"] == 60 and body["temperature"] == 0
    assert body["messages"] == PROMPT.messages()


def test_the_http_backend_speaks_completions_for_plain_models(stand_in):
    StandIn.answer = {"choices": [{"text": " We ship to Norway.", "finish_reason": "length"}]}
    generation = OpenAICompatible(stand_in, "gpt2", chat=False).generate(PROMPT, 20, far())
    assert generation.text == "We ship to Norway." and generation.stopped_by == "length"
    assert StandIn.requests[0]["path"] == "/v1/completions" and StandIn.requests[0]["auth"] is None
    assert StandIn.requests[0]["body"]["prompt"] == PROMPT.plain()


def test_http_errors_and_slow_servers_raise(stand_in):
    StandIn.status, StandIn.answer = 500, {"error": "overloaded"}
    with pytest.raises(GenerationError, match="500"):
        openai_backend(stand_in).generate(PROMPT, 20, far())
    StandIn.status, StandIn.answer = 200, {"choices": []}
    with pytest.raises(GenerationError, match="choices"):
        openai_backend(stand_in).generate(PROMPT, 20, far())
    StandIn.delay_s = 1.5
    with pytest.raises(TimeoutError):
        openai_backend(stand_in).generate(PROMPT, 20, time.monotonic() + 0.3)
    with pytest.raises(GenerationError):
        OpenAICompatible("http://127.0.0.1:9/v1", "m").generate(PROMPT, 20, far())  # nobody listens


async def test_the_service_answers_through_the_http_backend(stand_in, make_service):
    service = make_service(openai_backend(stand_in))
    reply = await service.reply(ReplyRequest("do you ship to Norway?"))
    assert reply.source == "generated" and reply.text == "Yes, we ship to Norway."
    StandIn.delay_s = 2.0
    slow = await make_service(openai_backend(stand_in), timeout_s=0.5).reply(ReplyRequest("do you ship to Norway?"))
    assert slow.source == "passage" and slow.rejected[0].startswith("timeout")


async def test_the_event_loop_keeps_running_while_smollm2_writes(smollm2, make_service):
    service = make_service(smollm2, timeout_s=2.0)
    ticks = []

    async def ticker():
        started = time.monotonic()
        while time.monotonic() - started < 1.5:
            await asyncio.sleep(0.05)
            ticks.append(time.monotonic())

    reply, _ = await asyncio.gather(service.reply(ReplyRequest("can I send it back if I opened the box?")), ticker())
    assert reply.new_tokens > 0 and reply.source in ("generated", "passage")
    gaps = [later - earlier for earlier, later in zip(ticks, ticks[1:], strict=False)]
    assert len(ticks) >= 10 and max(gaps) < 0.5  # the loop was never held for long while the model ran


@pytest.mark.parametrize(("avx512_bf16", "amx", "expected"), [(True, False, "bfloat16"), (False, True, "bfloat16"),
                                                              (False, False, "float32")])
def test_auto_dtype_is_bfloat16_only_where_the_cpu_has_bf16_instructions(monkeypatch, avx512_bf16, amx, expected):
    """Emulated bf16 (AVX-512 without BF16) reads a prompt 3.5 times slower than float32: a second per reply."""
    import torch

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    assert resolve_dtype("auto") == getattr(torch, expected)
    assert resolve_dtype("float32") == torch.float32 and resolve_dtype("bfloat16") == torch.bfloat16
