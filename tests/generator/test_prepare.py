"""Preparing the default model: converted once, reused after, converted again only when the source changes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from generator import prepare
from generator.config import load_config
from shop.settings import PROJECT_ROOT


def config_in(tmp_path: Path):
    return load_config(environ={"GENERATOR_CACHE_DIR": str(tmp_path)})


def fake_convert(calls):
    def convert(source: Path, target: Path) -> None:
        calls.append(target)
        target.mkdir(parents=True, exist_ok=True)
        (target / prepare.STAMP_NAME).write_text(json.dumps(prepare.expected_stamp(source)))

    return convert


def test_converts_once_then_reuses_the_cache(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(prepare, "convert", fake_convert(calls))
    config = config_in(tmp_path)
    first = prepare.ensure_prepared(config)
    second = prepare.ensure_prepared(config)
    assert first == second == tmp_path / prepare.MODEL_NAME and len(calls) == 1
    prepare.ensure_prepared(config, force=True)
    assert len(calls) == 2


def test_a_stale_cache_is_converted_again(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(prepare, "convert", fake_convert(calls))
    config = config_in(tmp_path)
    target = prepare.ensure_prepared(config)
    stamp = json.loads((target / prepare.STAMP_NAME).read_text())
    (target / prepare.STAMP_NAME).write_text(json.dumps({**stamp, "transformers": "0.0.1"}))
    assert not prepare.is_prepared(target, prepare.gguf_path())
    prepare.ensure_prepared(config)
    assert len(calls) == 2


def test_the_command_returns_at_once_when_the_cache_is_ready(tmp_path):
    target = tmp_path / prepare.MODEL_NAME
    target.mkdir()
    (target / prepare.STAMP_NAME).write_text(json.dumps(prepare.expected_stamp(prepare.gguf_path())))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "generator.prepare"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, env={"PATH": "", "GENERATOR_CACHE_DIR": str(tmp_path), "PYTHONPATH": "."})
    assert done.returncode == 0 and done.stdout == "", done.stderr
    assert time.monotonic() - started < 5  # no torch import on this path


def test_the_cached_default_model_holds_weights_and_a_tokenizer():
    target = prepare.ensure_prepared(load_config(environ={}))
    names = {path.name for path in target.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", prepare.STAMP_NAME} <= names
    assert "tokenizer.model" not in names  # the 98 MB GGUF copy the tokenizer would save is not kept
