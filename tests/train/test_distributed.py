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


GUARD = """
import os, runpy, sys

DATA, LOG = sys.argv.pop(1), sys.argv.pop(1)
RANK = os.environ.get("RANK", "0")


def hook(event, args):  # every open/listing of a path under the data folder, per rank
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.abspath(os.fsdecode(args[0]))
        if path.startswith(DATA):
            with open(f"{LOG}-{RANK}", "a") as fh:
                fh.write(f"{event} {path}\\n")


sys.addaudithook(hook)
sys.argv[0] = "distill"
runpy.run_module("distill.cli", run_name="__main__")
"""


def test_rank_1_reads_no_conversation_under_torchrun(tiny_model, sft_data, tmp_path):
    """--prepare-only with two processes: rank 0 reads and tokenizes, rank 1 opens nothing in the data folder."""
    guard = tmp_path / "guard.py"
    guard.write_text(GUARD)
    log = tmp_path / "opened"
    out = tmp_path / "student"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29519",
        str(guard), str(sft_data.parent), str(log),
        "train-student", str(sft_data), "-o", str(out), "--model", tiny_model, "--max-length", "512",
        "--prepare-only",
    ]  # fmt: skip
    env = {**os.environ, "DISTILL_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "prepared 24 rows" in proc.stderr
    rank0 = (tmp_path / "opened-0").read_text()
    assert str(sft_data) in rank0  # the hook sees rank 0 hash and read the file ...
    assert not (tmp_path / "opened-1").exists()  # ... and rank 1 open or list nothing there
    cache = out / ".tokenized"
    assert (cache / "current.json").is_file() and not (cache / "rank-1").exists()
    assert not (out / "model.safetensors").exists()  # no training
