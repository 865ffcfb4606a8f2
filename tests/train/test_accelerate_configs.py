"""The launcher configs in recipes/accelerate/ are valid accelerate configs with a runnable command."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[2] / "recipes" / "accelerate"


@pytest.mark.parametrize(
    ("name", "kind"), [("ddp.yaml", "MULTI_GPU"), ("fsdp.yaml", "FSDP"), ("zero3.yaml", "DEEPSPEED")]
)
def test_accelerate_config_loads(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    path = CONFIGS / name
    config = load_config_from_file(str(path))
    assert config.distributed_type.value == kind
    assert config.mixed_precision == "bf16" and not config.use_cpu
    text = path.read_text()
    assert f"accelerate launch --config_file recipes/accelerate/{name} -m distill.cli train-student" in text
    if kind == "DEEPSPEED":
        assert (
            config.deepspeed_config["zero_stage"] == 3 and config.deepspeed_config["zero3_save_16bit_model"]
        )
    if kind == "FSDP":
        assert config.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"


def test_cli_module_runs(tmp_path):
    """`python -m distill.cli train-student --help` works (what `accelerate launch -m distill.cli` runs)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "distill.cli", "train-student", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for flag in (
        "--output",
        "--recipe",
        "--model",
        "--max-length",
        "--epochs",
        "--max-steps",
        "--lora",
        "--resume",
    ):
        assert flag in proc.stdout
