"""`distill run RECIPE`: the stages a recipe lists, in order, each in its own folder of one run folder.

    RUN/generate  RUN/filter  (RUN/mix)  RUN/train  RUN/eval  (RUN/eval-baseline)  RUN/run.json

Each stage runs as its own `distill <stage>` process (vLLM and training never share a process)
with a resolved recipe written beside its folder, wired to the previous stage's output. A stage
whose fingerprint (its resolved config + the manifest of what it reads) matches the last complete
run is skipped; one whose inputs or config changed is redone from scratch; one that was
interrupted resumes. A failed stage stops the run; finished stages stay as they are.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from distill.config import StrictModel, load_stage_config, read_recipe
from distill.errors import UserError
from distill.shards import atomic_write_text, sha256_file

ORDER = ("generate", "filter", "mix", "train", "eval")
STATE = "run.json"


class RunConfig(StrictModel):
    output: str | None = Field(None, description="The run folder (default: runs/<recipe name>).")
    stages: list[str] | None = Field(
        None, description="Stages to run, in order (default: every section present)."
    )
    baseline: str | None = Field(
        None, description="Also evaluate this model (e.g. the student before training) and compare."
    )
    train_launcher: str | None = Field(
        None,
        description="Command that launches the train stage on many GPUs, e.g. 'accelerate launch "
        "--config_file recipes/accelerate/zero3.yaml' (it gets `-m distill.cli train-student ...`).",
    )


def _stage_outputs(run: Path) -> dict[str, Path]:
    return {s: run / s for s in ORDER} | {"eval-baseline": run / "eval-baseline"}


def _done_marker(stage: str, folder: Path) -> Path:
    return folder / ("results.json" if stage.startswith("eval") else "manifest.json")


def plan_stages(recipe: Path) -> tuple[RunConfig, list[str], dict[str, Any]]:
    data = read_recipe(recipe)
    cfg = load_stage_config("run", recipe)
    stages = cfg.stages or [s for s in ORDER if s in data]
    unknown = [s for s in stages if s not in ORDER]
    if unknown:
        raise UserError(f"{recipe}: unknown stage {unknown[0]!r} in run.stages (known: {', '.join(ORDER)})")
    if not stages:
        raise UserError(f"{recipe}: no stage sections (generate, filter, train, eval)")
    if cfg.baseline and "eval" not in stages:
        raise UserError(f"{recipe}: run.baseline needs an eval stage")
    return cfg, stages, data


def _wire(
    stage: str, data: dict[str, Any], out: dict[str, Path], stages: list[str], model: str | None = None
) -> tuple[dict, list[str]]:
    """The stage's resolved recipe section and its command line (without the recipe flag)."""
    section = json.loads(json.dumps(data.get(stage.split("-")[0]) or {}))
    if stage == "generate":
        src = (section.get("input") or {}).get("path")
        if not src:
            raise UserError("generate.input.path must be set in a recipe run by `distill run`")
        section["output"] = str(out[stage])
        return section, ["generate", str(src), "-o", str(out[stage])]
    if stage == "filter":
        section["input"], section["output"] = str(out["generate"]), str(out[stage])
        return section, ["filter", str(out["generate"]), "-o", str(out[stage])]
    if stage == "mix":
        for src in section.get("sources") or []:
            src["path"] = str(src.get("path", "")).replace("{run}", str(out["generate"].parent))
        section["output"] = str(out[stage])
        return section, ["mix", "-o", str(out[stage])]
    if stage == "train":
        data_dir = out["mix"] if "mix" in stages else out["filter"] / "sft"
        section["data"], section["output"] = str(data_dir), str(out[stage])
        return section, ["train-student", str(data_dir), "-o", str(out[stage])]
    model = model or str(out["train"])
    section.setdefault("model", {})["model"] = model
    section["output"] = str(out[stage])
    return section, ["eval", model, "-o", str(out[stage])]


def _fingerprint(section: dict, upstream: Path | None) -> str:
    from distill.schema import stable_hash

    marker = None
    if upstream is not None:
        m = upstream / "manifest.json"
        marker = sha256_file(m) if m.is_file() else "missing"
    return stable_hash(section, marker, length=24)


def run_pipeline(recipe: Path, output: Path | None = None, log=print) -> Path:
    cfg, stages, data = plan_stages(recipe)
    run = Path(output or cfg.output or Path("runs") / (data.get("name") or recipe.stem))
    run.mkdir(parents=True, exist_ok=True)
    out = _stage_outputs(run)
    state_path = run / STATE
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"stages": {}}
    todo = list(stages)
    if cfg.baseline:
        todo.insert(todo.index("eval"), "eval-baseline")
    upstream_of = {
        "generate": None,
        "filter": out["generate"],
        "mix": out["filter"],
        "train": out["mix"] if "mix" in stages else out["filter"],
        "eval": out["train"],
        "eval-baseline": None,
    }
    for stage in todo:
        section, argv = _wire(stage, data, out, stages, cfg.baseline if stage == "eval-baseline" else None)
        fp = _fingerprint(section, upstream_of[stage])
        folder, prev = out[stage], state["stages"].get(stage, {})
        if prev.get("fingerprint") == fp and prev.get("complete") and _done_marker(stage, folder).is_file():
            log(f"[{stage}] up to date: {folder}")
            continue
        if folder.exists() and prev.get("fingerprint") != fp:
            log(f"[{stage}] inputs or config changed since the last run: redoing {folder}")
            shutil.rmtree(folder)
        elif folder.exists() and stage == "train":
            argv.append("--resume")
        resolved = run / f"{stage}.recipe.yaml"
        key = stage.split("-")[0]
        atomic_write_text(resolved, yaml.safe_dump({key: section}, sort_keys=False))
        load_stage_config(key, resolved)  # validate before starting anything
        state["stages"][stage] = {"fingerprint": fp, "complete": False, "started_at": _now()}
        atomic_write_text(state_path, json.dumps(state, indent=1))
        log(f"[{stage}] distill {' '.join(argv)}")
        started = time.monotonic()
        launcher = [sys.executable]
        if stage == "train" and cfg.train_launcher:
            launcher = shlex.split(cfg.train_launcher)
        code = subprocess.call([*launcher, "-m", "distill.cli", *argv, "--recipe", str(resolved)])
        if code != 0:
            raise UserError(
                f"stage {stage} failed (exit code {code}); finished stages are kept. Fix the cause and run "
                f"the same command again: it resumes from {stage}"
            )
        state["stages"][stage].update(
            complete=True, finished_at=_now(), seconds=round(time.monotonic() - started, 1)
        )
        atomic_write_text(state_path, json.dumps(state, indent=1))
    if (
        cfg.baseline
        and (out["eval-baseline"] / "results.json").is_file()
        and (out["eval"] / "results.json").is_file()
    ):
        subprocess.call(
            [
                sys.executable,
                "-m",
                "distill.cli",
                "eval",
                "--compare",
                str(out["eval-baseline"]),
                str(out["eval"]),
            ]
        )
    return run


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
