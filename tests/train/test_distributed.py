"""The multi-process path on the CPU: two DDP processes (gloo) running `-m distill.cli train-student`.

`accelerate launch --cpu` starts several CPU processes only through mpirun, so this uses torchrun, which
sets the same environment (RANK, WORLD_SIZE, MASTER_ADDR) that `accelerate launch` sets on GPUs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow


def test_two_cpu_processes_train_one_model(tiny_model, sft_data, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "train:\n  global_batch_size: 4\n  logging_steps: 1\n  learning_rate: 0.001\n  bf16: false\n"
    )
    out = tmp_path / "student"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
        "-m", "distill.cli", "train-student", str(sft_data), "-o", str(out),
        "--recipe", str(recipe), "--model", tiny_model, "--max-length", "512", "--max-steps", "2",
    ]  # fmt: skip
    env = {**os.environ, "DISTILL_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runtime"]["world_size"] == 2 and manifest["runtime"]["grad_accum"] == 2
    assert manifest["training"]["global_step"] == 2 and manifest["training"]["completed"]
    steps = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "loss" in r] == [1, 2]  # logged once, by the main process
    assert (out / "model.safetensors").is_file() and not (out / ".tokenized").exists()
