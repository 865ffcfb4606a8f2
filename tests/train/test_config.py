"""The train section of a recipe: defaults, presets, precedence, validation."""

from __future__ import annotations

import pytest

from distill.config import ConfigError
from distill.stages import load_stage_config
from distill.train.config import PRESETS, LoraSettings, TrainConfig


def test_defaults():
    config = TrainConfig()
    assert config.model == "smollm2-135m"
    assert config.max_length == 16384
    assert config.truncate is False
    assert config.packing is True
    assert config.lr_scheduler == "cosine_with_min_lr"
    assert config.lora is False and config.merge_lora is True
    assert config.use_gradient_checkpointing() is True  # 16384 tokens is long
    assert TrainConfig(max_length=1024).use_gradient_checkpointing() is False
    assert TrainConfig(max_length=1024, gradient_checkpointing=True).use_gradient_checkpointing() is True


def test_every_field_is_described():
    for model in (TrainConfig, LoraSettings):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_fill_only_unset_keys(preset):
    config = TrainConfig.model_validate({"preset": preset, "learning_rate": 3e-3})
    assert config.learning_rate == 3e-3  # explicit wins
    for key, value in PRESETS[preset].items():
        if key != "learning_rate":
            assert getattr(config, key) == value


def test_openr1_preset_matches_the_published_recipe():
    config = TrainConfig(preset="openr1")
    assert (config.learning_rate, config.epochs, config.max_length) == (4e-5, 5, 32768)
    assert (config.min_lr_rate, config.warmup_ratio, config.max_grad_norm) == (0.1, 0.03, 0.2)
    assert config.global_batch_size == 128


def test_recipe_section_and_flags(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  preset: s1\n  max_length: 4096\n  lora: true\n  lora_settings: {r: 8}\n")
    config = load_stage_config("train", recipe, {"max_length": 2048, "model": None})
    assert config.max_length == 2048  # flag > recipe
    assert config.learning_rate == 1e-5 and config.adam_beta2 == 0.95  # preset
    assert config.lora and config.lora_settings.r == 8


def test_unknown_key_is_a_config_error(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  lerning_rate: 1e-5\n")
    with pytest.raises(ConfigError, match="lerning_rate"):
        load_stage_config("train", recipe)


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError):
        load_stage_config("train", None, {"max_length": 0})
    with pytest.raises(ConfigError):
        load_stage_config("train", None, {"preset": "nope"})
