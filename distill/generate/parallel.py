"""vLLM data parallelism on one machine: D engines, each on its own `tensor_parallel_size` GPUs.

vLLM's offline `LLM` does not run data parallel in one process, and it needs none here: shards
are independent, so this machine's job (worker I of W) becomes D child workers, I*D + d of W*D,
each pinned to its GPUs through CUDA_VISIBLE_DEVICES. They write disjoint shards of the same
folder and the manifests merge as for any W workers. Every node of a multi-node run must use the
same D.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from distill.errors import UserError
from distill.generate.config import GenerateConfig
from distill.shards import merge_manifests


def visible_devices(count: int) -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env:
        devices = [d for d in env.split(",") if d.strip()]
    else:
        import torch

        devices = [str(i) for i in range(torch.cuda.device_count())]
    if len(devices) < count:
        raise UserError(
            f"data_parallel_size x tensor_parallel_size needs {count} GPUs; {len(devices)} visible"
        )
    return devices


def run_data_parallel(cfg: GenerateConfig, log=print) -> bool:
    """Run D child workers to completion; True when the whole folder is complete."""
    d_size, tp = cfg.teacher.data_parallel_size, cfg.teacher.tensor_parallel_size
    from vllm.platforms import current_platform

    devices = None if current_platform.is_cpu() else visible_devices(d_size * tp)
    procs = []
    with tempfile.TemporaryDirectory(prefix="distill-dp-") as tmp:
        for d in range(d_size):
            child = cfg.model_copy(deep=True)
            child.teacher.data_parallel_size = 1
            child.num_workers = cfg.num_workers * d_size
            child.worker_index = cfg.worker_index * d_size + d
            recipe = Path(tmp) / f"worker-{d}.yaml"
            recipe.write_text(yaml.safe_dump({"generate": child.model_dump(mode="json")}))
            env = dict(os.environ)
            if devices is not None:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(devices[d * tp : (d + 1) * tp])
            cmd = [
                sys.executable,
                "-m",
                "distill.cli",
                "generate",
                str(child.input.path),
                "-o",
                str(child.output),
                "--recipe",
                str(recipe),
            ]
            log(
                f"data parallel: starting worker {child.worker_index} of {child.num_workers}"
                + (f" on GPUs {env['CUDA_VISIBLE_DEVICES']}" if devices is not None else "")
            )
            procs.append(subprocess.Popen(cmd, env=env))
        codes = [p.wait() for p in procs]
    failed = [i for i, c in enumerate(codes) if c != 0]
    if failed:
        raise UserError(f"data-parallel workers {failed} failed; rerun the same command to resume")
    return merge_manifests(Path(cfg.output)) is not None
