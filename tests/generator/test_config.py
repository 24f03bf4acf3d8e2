"""generator.yml and its environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.config import CONFIG_FILE, load_config


def test_defaults_from_the_file():
    config = load_config(environ={})
    assert config.backend == "local" and config.enabled and config.max_new_tokens == 60 and config.timeout_s > 0
    assert config.model_cache_dir.parts[-2:] == ("northwind-shop", "models")
    assert config.lexical_weight > 0 and "the" in config.lexical_ignore


def test_environment_overrides_and_the_key_only_from_the_environment(tmp_path):
    env = {"GENERATOR_BACKEND": "openai", "GENERATOR_API_URL": "http://gpu-box:8000/v1", "GENERATOR_API_MODEL": "m",
           "GENERATOR_API_KEY": "sk-from-env", "GENERATOR_TIMEOUT_S": "4.5", "GENERATOR_ENABLED": "0",
           "GENERATOR_MODEL_PATH": "/models/gpt2", "GENERATOR_THREADS": "2", "GENERATOR_CACHE_DIR": str(tmp_path)}
    config = load_config(environ=env)
    assert (config.backend, config.api_url, config.api_model, config.api_key) == (
        "openai", "http://gpu-box:8000/v1", "m", "sk-from-env")
    assert config.timeout_s == 4.5 and not config.enabled and config.model_path == "/models/gpt2"
    assert config.threads == 2 and config.model_cache_dir == Path(tmp_path)
    assert "api_key" not in CONFIG_FILE.read_text().replace("GENERATOR_API_KEY", "")  # no secret in the file


@pytest.mark.parametrize("env", [{"GENERATOR_BACKEND": "llama"}, {"GENERATOR_TIMEOUT_S": "0"},
                                 {"GENERATOR_DTYPE": "int3"}, {"GENERATOR_LEXICAL_WEIGHT": "-0.1"}])
def test_invalid_settings_are_refused(env):
    with pytest.raises(ValueError):
        load_config(environ=env)
