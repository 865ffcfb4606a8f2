from pathlib import Path

import pytest
from pydantic import BaseModel

from distill.config import ConfigError
from distill.stages import SECTIONS, RunConfig, load_stage_config, read_recipe, stage_model

DISTILL = Path(__file__).resolve().parents[1] / "distill"


@pytest.mark.parametrize("stage", SECTIONS)
def test_every_section_has_a_strict_config_model(stage):
    model = stage_model(stage)
    assert issubclass(model, BaseModel) and model.model_config.get("extra") == "forbid"
    assert isinstance(load_stage_config(stage), model)  # the defaults validate


def test_run_section_and_unknown_names(tmp_path):
    assert stage_model("run") is RunConfig
    with pytest.raises(KeyError):
        stage_model("nope")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: x\nrun:\n  stages: [generate]\nmixx: {}\n")
    with pytest.raises(
        ConfigError, match=r"unknown recipe section 'mixx' \(known: generate, filter, mix, eval, train, run\)"
    ):
        read_recipe(recipe)


def test_the_ground_floor_config_names_no_stage():
    """Stages are registered from above (distill/stages.py): config.py names no stage module."""
    source = (DISTILL / "config.py").read_text()
    for stage in ("generate", "filter", "mix", "eval", "train", "pipeline"):
        assert f"distill.{stage}" not in source
