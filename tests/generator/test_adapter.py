"""The shop's LoRA adapter: merged without PEFT exactly as PEFT merges it, refused for another base model, and the
shipped adapter in use by default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from generator.adapter import TUNED_FILE, adapter_problem, base_fingerprint, merge_adapter
from generator.config import get_config


@pytest.fixture(scope="module")
def tiny_adapter(tmp_path_factory, tiny_gpt2_dir) -> Path:
    """A PEFT LoRA adapter on the tiny GPT-2, with non-zero B so that merging changes the weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    folder = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(folder)
    (folder / TUNED_FILE).write_text(json.dumps({"base_model": "tiny-gpt2",
                                                 "base_fingerprint": base_fingerprint(tiny_gpt2_dir)}))
    return folder


def test_merging_gives_the_same_outputs_as_peft(tiny_adapter, tiny_gpt2_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[5, 17, 42, 8, 3]])
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir), tiny_adapter)
    reference = reference.merge_and_unload().eval()
    ours = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).eval()
    before = ours(ids).logits
    assert merge_adapter(ours, tiny_adapter) == ours.config.n_layer
    with torch.no_grad():
        assert torch.allclose(ours(ids).logits, reference(ids).logits, atol=1e-4)
        assert not torch.allclose(before, reference(ids).logits, atol=1e-3)


def test_an_adapter_for_another_base_model_is_refused(tiny_adapter, tiny_gpt2_dir, tmp_path):
    assert adapter_problem(tiny_adapter, tiny_gpt2_dir) is None
    other = tmp_path / "other"
    shutil.copytree(tiny_gpt2_dir, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "n_layer": config["n_layer"] + 1}))
    assert "another base model" in adapter_problem(tiny_adapter, other)
    (tiny_adapter / "missing").mkdir(exist_ok=True)
    assert "missing" in adapter_problem(tiny_adapter / "missing", tiny_gpt2_dir)


def test_the_shipped_adapter_belongs_to_the_default_model_and_is_merged(shop_model):
    config = get_config()
    assert config.adapter_dir is not None and (config.adapter_dir / TUNED_FILE).exists()
    assert shop_model.describe()["adapter"] == str(config.adapter_dir)
