from pathlib import Path

import pytest

from distill.config import ConfigError
from distill.stages import load_stage_config, validate_recipe
from tests.conftest import REPO

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_recipe_in_the_repo_validates(recipe):
    configs = validate_recipe(recipe)
    assert configs, f"{recipe} has no stage section"


def test_every_recipe_starts_with_hardware_and_command_comment():
    for recipe in RECIPES:
        lines = recipe.read_text().splitlines()
        header = lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))]
        assert header, f"{recipe.name}: no header comment"
        assert any("Sized for:" in line for line in header), f"{recipe.name}: no hardware line"
        assert any("Run:" in line and "distill" in line for line in header), f"{recipe.name}: no command line"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_unknown_key_is_an_error_naming_the_key(tmp_path):
    r = write(tmp_path, "generate:\n  sampling:\n    temprature: 0.7\n")
    with pytest.raises(ConfigError, match=r"unknown key 'sampling.temprature'"):
        load_stage_config("generate", r)


def test_unknown_section_is_an_error(tmp_path):
    r = write(tmp_path, "generat:\n  shard_size: 3\n")
    with pytest.raises(ConfigError, match="unknown recipe section 'generat'"):
        load_stage_config("generate", r)


def test_bad_value_names_the_field(tmp_path):
    r = write(tmp_path, "generate:\n  sampling:\n    top_p: 3\n")
    with pytest.raises(ConfigError, match=r"sampling\.top_p"):
        load_stage_config("generate", r)


def test_flags_override_recipe_and_recipe_overrides_defaults(tmp_path):
    r = write(tmp_path, "generate:\n  sampling:\n    num_samples: 8\n    temperature: 0.7\n  shard_size: 3\n")
    cfg = load_stage_config("generate", r, {"sampling.temperature": 0.9, "shard_size": None})
    assert cfg.sampling.num_samples == 8  # recipe
    assert cfg.sampling.temperature == 0.9  # flag wins
    assert cfg.shard_size == 3  # unset flag leaves the recipe value
    assert cfg.sampling.top_p == 0.95  # default


def test_defaults_follow_the_r1_recipe():
    cfg = load_stage_config("generate")
    s = cfg.sampling
    assert (s.temperature, s.top_p, s.num_samples, s.max_tokens) == (0.6, 0.95, 4, 32768)
    assert cfg.prompts.system_prompt is None and cfg.prompts.think_prefill
    assert cfg.teacher.backend == "vllm" and cfg.teacher.model == "smollm2-135m"


def test_missing_recipe_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="recipe not found"):
        load_stage_config("generate", tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_stage_config("generate", write(tmp_path, "generate: [unclosed\n"))
