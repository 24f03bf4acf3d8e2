"""The generator's settings: generator.yml, with environment overrides (secrets only from the environment)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = PROJECT_ROOT / "generator.yml"
BACKENDS = ("local", "openai")
DTYPES = ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
class GeneratorConfig:
    backend: str = "local"
    enabled: bool = True
    model_path: str = ""
    adapter: str = ""
    constrain_numbers: bool = True
    cache_dir: str = ""
    dtype: str = "auto"
    threads: int = 1
    prompt_format: str = "auto"
    repetition_penalty: float = 1.0
    api_url: str = "http://localhost:8000/v1"
    api_model: str = ""
    api_key: str = ""
    max_new_tokens: int = 60
    max_sentences: int = 2
    trust_dont_know: bool = False
    timeout_s: float = 2.8
    preload: bool = True
    top_k: int = 1
    min_score: float = 0.5
    min_score_unrecognised: float = 0.6
    runner_up_margin: float = 0.03
    lexical_weight: float = 0.1
    lexical_ignore: Tuple[str, ...] = ()
    focus_first: bool = True
    order_facts: int = 2
    history_turns: int = 4
    max_chars: int = 420

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"generator backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"generator dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.prompt_format not in ("auto", "chat", "plain"):
            raise ValueError(f"prompt_format must be auto, chat or plain, got {self.prompt_format!r}")
        if min(self.timeout_s, self.max_new_tokens, self.max_sentences, self.threads, self.top_k) <= 0:
            raise ValueError("timeout_s, max_new_tokens, max_sentences, threads and top_k must be positive")
        if self.runner_up_margin < 0:
            raise ValueError(f"runner_up_margin must be 0 (off) or more, got {self.runner_up_margin}")
        if self.lexical_weight < 0:
            raise ValueError(f"lexical_weight must be 0 (off) or more, got {self.lexical_weight}")

    @property
    def adapter_dir(self) -> Optional[Path]:
        """The LoRA adapter folder (relative paths from the project root), or None for the plain base model."""
        if not self.adapter or self.adapter.lower() == "none":
            return None
        path = Path(self.adapter).expanduser()
        return path if path.is_absolute() else PROJECT_ROOT / path

    @property
    def model_cache_dir(self) -> Path:
        """Where the converted default model lives: outside git, shared by every checkout of this user."""
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return base / "northwind-shop" / "models"


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load_config(path: Optional[Path] = None, environ: Optional[Dict[str, str]] = None) -> GeneratorConfig:
    """Read the YAML file, then let GENERATOR_* variables win."""
    env = os.environ if environ is None else environ
    config_path = Path(env.get("GENERATOR_CONFIG") or path or CONFIG_FILE)
    raw: Dict[str, Any] = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    local, remote = raw.get("local") or {}, raw.get("openai") or {}
    retrieval, checks = raw.get("retrieval") or {}, raw.get("checks") or {}

    def pick(name: str, value: Any, cast=str) -> Any:
        override = env.get(name)
        return cast(override) if override not in (None, "") else cast(value)

    return GeneratorConfig(
        backend=pick("GENERATOR_BACKEND", raw.get("backend", "local")).strip().lower(),
        enabled=pick("GENERATOR_ENABLED", str(raw.get("enabled", True)), _flag),
        model_path=pick("GENERATOR_MODEL_PATH", local.get("model_path") or ""),
        adapter=pick("GENERATOR_ADAPTER", local.get("adapter") or "").strip(),
        constrain_numbers=pick("GENERATOR_CONSTRAIN_NUMBERS", str(local.get("constrain_numbers", True)), _flag),
        cache_dir=pick("GENERATOR_CACHE_DIR", local.get("cache_dir") or ""),
        dtype=pick("GENERATOR_DTYPE", local.get("dtype", "auto")),
        threads=pick("GENERATOR_THREADS", local.get("threads", 1), int),
        prompt_format=local.get("prompt_format", "auto"),
        repetition_penalty=float(local.get("repetition_penalty", 1.0)),
        api_url=pick("GENERATOR_API_URL", remote.get("api_url", "http://localhost:8000/v1")),
        api_model=pick("GENERATOR_API_MODEL", remote.get("model") or ""),
        api_key=env.get("GENERATOR_API_KEY", ""),
        max_new_tokens=pick("GENERATOR_MAX_NEW_TOKENS", raw.get("max_new_tokens", 60), int),
        max_sentences=int(raw.get("max_sentences", 2)),
        trust_dont_know=pick("GENERATOR_TRUST_DONT_KNOW", str(raw.get("trust_dont_know", False)), _flag),
        timeout_s=pick("GENERATOR_TIMEOUT_S", raw.get("timeout_s", 2.8), float),
        preload=pick("GENERATOR_PRELOAD", str(raw.get("preload", True)), _flag),
        top_k=pick("GENERATOR_TOP_K", retrieval.get("top_k", 1), int),
        min_score=pick("GENERATOR_MIN_SCORE", retrieval.get("min_score", 0.5), float),
        min_score_unrecognised=float(retrieval.get("min_score_unrecognised", 0.6)),
        runner_up_margin=float(retrieval.get("runner_up_margin", 0.03)),
        lexical_weight=pick("GENERATOR_LEXICAL_WEIGHT", retrieval.get("lexical_weight", 0.1), float),
        lexical_ignore=tuple(str(word).lower() for word in retrieval.get("lexical_ignore") or ()),
        focus_first=pick("GENERATOR_FOCUS_FIRST", str(retrieval.get("focus_first", True)), _flag),
        order_facts=int(retrieval.get("order_facts", 2)),
        history_turns=int(retrieval.get("history_turns", 4)),
        max_chars=int(checks.get("max_chars", 420)),
    )


@lru_cache(maxsize=1)
def get_config() -> GeneratorConfig:
    return load_config()
