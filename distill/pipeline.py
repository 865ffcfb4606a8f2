"""`distill run RECIPE`: the stages a recipe lists, in order, each in its own folder of one run folder.

    RUN/generate  RUN/filter  (RUN/mix)  RUN/train  RUN/eval  (RUN/eval-baseline)  RUN/run.json
    RUN/logs/<stage>.log   each stage's third-party output (vLLM, transformers, ...; distill/logs.py)

Each stage runs as its own `distill <stage>` process (vLLM and training never share a process)
with a resolved recipe written beside its folder, wired to the previous stage's output. A stage
whose fingerprint (its resolved config + the manifest of what it reads) matches the last complete
run is skipped; one whose inputs or config changed is redone from scratch; one that was
interrupted resumes. A failed stage stops the run; finished stages stay as they are. The run ends
with a summary: each stage's time, what went in and came out, and where its outputs are.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from distill.cost import Prices, fmt_money, money, total_spent
from distill.errors import UserError
from distill.logs import ENV_FILE, ENV_IN_RUN
from distill.progress import duration
from distill.provenance import atomic_write_text, sha256_file, utc_now
from distill.signals import Preempted, call_forwarding
from distill.stages import RunConfig, load_stage_config, read_recipe

ORDER = ("generate", "filter", "mix", "train", "eval")
STATE = "run.json"
LOGS = "logs"


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
    stage: str,
    data: dict[str, Any],
    out: dict[str, Path],
    stages: list[str],
    model: str | None = None,
    prices: dict[str, Any] | None = None,
) -> tuple[dict, list[str]]:
    """The stage's resolved recipe section and its command line (without the recipe flag)."""
    section = json.loads(json.dumps(data.get(stage.split("-")[0]) or {}))
    if stage == "generate":
        src = (section.get("input") or {}).get("path")
        if not src:
            raise UserError("generate.input.path must be set in a recipe run by `distill run`")
        section["output"] = str(out[stage])
        if prices and "cost" not in section:
            section["cost"] = prices
        adaptive = (section.get("sampling") or {}).get("until_pass") is not None
        if adaptive and "verify" not in section and (data.get("filter") or {}).get("verify"):
            # adaptive sampling verifies each round as the filter will: one policy, not two
            section["verify"] = json.loads(json.dumps(data["filter"]["verify"]))
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
    done: list[tuple[str, str]] = []  # (stage, what happened to it in this run), for the summary
    run_started = time.monotonic()
    try:
        _run_stages(cfg, stages, data, run, out, state, todo, upstream_of, log, done)
    finally:
        for line in run_summary(run, done, state, time.monotonic() - run_started, cfg.cost):
            log(line)
    return run


def _run_stages(cfg, stages, data, run, out, state, todo, upstream_of, log, done) -> None:
    state_path = run / STATE
    for stage in todo:
        prices = cfg.cost.model_dump() if cfg.cost else None
        section, argv = _wire(
            stage, data, out, stages, cfg.baseline if stage == "eval-baseline" else None, prices
        )
        fp = _fingerprint(section, upstream_of[stage])
        folder, prev = out[stage], state["stages"].get(stage, {})
        if prev.get("fingerprint") == fp and prev.get("complete") and _done_marker(stage, folder).is_file():
            log(f"[{stage}] up to date: {folder}")
            done.append((stage, "up to date"))
            continue
        if folder.exists() and prev.get("fingerprint") != fp:
            log(f"[{stage}] inputs or config changed since the last run: redoing {folder}")
            shutil.rmtree(folder)
        elif folder.exists() and stage == "train":
            argv.append("--resume")
        if stage == "generate" and folder.exists():
            for line in part_done_lines(stage, folder, cfg.cost):
                log(f"[{stage}] {line}")
        resolved = run / f"{stage}.recipe.yaml"
        key = stage.split("-")[0]
        atomic_write_text(resolved, yaml.safe_dump({key: section}, sort_keys=False))
        load_stage_config(key, resolved)  # validate before starting anything
        state["stages"][stage] = {"fingerprint": fp, "complete": False, "started_at": utc_now()}
        atomic_write_text(state_path, json.dumps(state, indent=1))
        log(f"[{stage}] distill {' '.join(argv)}")
        started = time.monotonic()
        launcher = [sys.executable]
        if stage == "train" and cfg.train_launcher:
            launcher = shlex.split(cfg.train_launcher)
        stage_log = run / LOGS / f"{stage}.log"
        # SIGTERM to `distill run` (PID 1 in a container) is passed on to the stage, which stops
        # cleanly (generate flushes its journal) before this process exits
        try:
            code = call_forwarding(
                [*launcher, "-m", "distill.cli", *argv, "--recipe", str(resolved)],
                env={**os.environ, ENV_FILE: str(stage_log), ENV_IN_RUN: "1"},
                stdout=_stderr_fd(),  # the stages' lines are for the user; stdout: the run folder
            )
        except Preempted:
            for line in part_done_lines(stage, folder, cfg.cost):
                log(f"[{stage}] {line}")
            raise
        if code != 0:
            for line in part_done_lines(stage, folder, cfg.cost):
                log(f"[{stage}] {line}")
            done.append((stage, "failed"))
            state["stages"][stage]["seconds"] = round(time.monotonic() - started, 1)
            raise UserError(
                f"stage {stage} failed (exit code {code}); finished stages are kept. Fix the cause and run "
                f"the same command again: it resumes from {stage}"
                + (f". Its log: {stage_log}" if stage_log.is_file() else "")
            )
        state["stages"][stage].update(
            complete=True, finished_at=utc_now(), seconds=round(time.monotonic() - started, 1)
        )
        atomic_write_text(state_path, json.dumps(state, indent=1))
        done.append((stage, "ran"))
        spent = stage_spent(stage, folder, cfg.cost)
        if spent:
            total = run_spent(run, cfg.cost)
            log(f"[{stage}] spent {describe_spent(spent)}; the run so far: {describe_spent(total)}")
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
            ],
            stdout=_stderr_fd(),
        )


def _stderr_fd() -> int | None:
    """This process's stderr for a child's stdout (None: inherit stdout, e.g. under a notebook)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


# --- the closing summary ---------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def stage_facts(stage: str, folder: Path) -> tuple[str, str, str]:
    """(what went in, what came out, where the output is) of a finished stage, from its files."""
    if stage == "generate":
        t = _read_json(folder / "manifest.json").get("totals", {})
        out = f"{_n(t.get('rows'))} samples, {_n(t.get('completion_tokens'))} tokens"
        return f"{_n(t.get('prompts'))} prompts", out, str(folder)
    if stage == "filter":
        t = _read_json(folder / "manifest.json").get("totals", {})
        where = f"{folder / 'sft'}  (report: {folder / 'report.md'})"
        return f"{_n(t.get('rows'))} traces", f"{_n(t.get('kept'))} kept", where
    if stage == "mix":
        m = _read_json(folder / "mix.json")
        sources = m.get("sources") or []
        return f"{len(sources)} sources", f"{_n(m.get('rows'))} rows", str(folder)
    if stage == "train":
        m = _read_json(folder / "manifest.json")
        d, t = m.get("data", {}), m.get("training", {})
        loss = t.get("train_loss")
        out = f"{_n(t.get('global_step'))} steps" + (
            f", loss {loss:.3f}" if isinstance(loss, int | float) else ""
        )
        return f"{_n(d.get('rows_kept'))} conversations", out, str(folder)
    benches = _read_json(folder / "results.json").get("benchmarks", {})
    problems = sum(b.get("num_problems", 0) for b in benches.values())
    scores = [
        (f"{name} " if len(benches) > 1 else "") + f"pass@1 {b['metrics']['pass@1']:.3f}"
        for name, b in benches.items()
        if isinstance((b.get("metrics") or {}).get("pass@1"), int | float)
    ]
    return f"{_n(problems)} problems", ", ".join(scores) or "?", str(folder / "results.json")


# --- what the stages spent ----------------------------------------------------------------------


def stage_spent(stage: str, folder: Path, prices: Prices | None) -> dict[str, Any] | None:
    """What a stage spent, from its files: the teacher's tokens and time (generate, eval: their
    `spent/` records), the accelerator-hours of training; with money where `prices` price it."""
    if stage == "generate":
        return total_spent(folder, prices)
    if stage.startswith("eval"):
        parts = [total_spent(d.parent, prices) for d in sorted(folder.rglob("spent")) if d.is_dir()]
        return _add([p for p in parts if p])
    if stage == "train":
        m = _read_json(folder / "manifest.json")
        runtime, training = m.get("runtime") or {}, m.get("training") or {}
        if not training:
            return None
        accelerators = (runtime.get("world_size") or 1) if runtime.get("cuda") else 0
        wall = training.get("wall_s") or 0.0
        spent: dict[str, Any] = {
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "wall_s": wall,
            "accelerators": accelerators,
            "accelerator_hours": round(accelerators * wall / 3600, 6),
        }
        if prices is not None and prices.priced:
            spent["money"] = money(spent, prices)
        return spent
    return None


def _add(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not parts:
        return None
    total: dict[str, Any] = {}
    for key in ("prompt_tokens", "completion_tokens", "accelerator_hours", "wall_s", "money"):
        values = [p.get(key) for p in parts if p.get(key) is not None]
        if values:
            total[key] = round(sum(values), 6)
    return total


def run_spent(run: Path, prices: Prices | None) -> dict[str, Any] | None:
    """Every stage's spending in the run folder, added up."""
    outs = _stage_outputs(run)
    return _add([p for st, f in outs.items() if f.exists() and (p := stage_spent(st, f, prices))])


def describe_spent(spent: dict[str, Any] | None, currency: str = "USD") -> str:
    if not spent:
        return "nothing recorded"
    parts = []
    tokens = (spent.get("prompt_tokens") or 0) + (spent.get("completion_tokens") or 0)
    if tokens:
        parts.append(
            f"{tokens:,} tokens ({spent.get('prompt_tokens') or 0:,} in, {spent.get('completion_tokens') or 0:,} out)"
        )
    if spent.get("accelerator_hours"):
        parts.append(f"{spent['accelerator_hours']:.2f} accelerator-h")
    if spent.get("money") is not None:
        parts.append(fmt_money(spent["money"], (spent.get("prices") or {}).get("currency", currency)))
    return ", ".join(parts) or "no tokens"


def part_done_lines(stage: str, folder: Path, prices: Prices | None) -> list[str]:
    """For a generate stage that is not complete: how far it got, what it spent, and what the rest
    should cost at the rate so far."""
    if stage != "generate" or (folder / "manifest.json").is_file():
        return []
    from distill.generate.run import progress_of

    progress = progress_of(folder)
    spent = total_spent(folder, prices)
    if not progress or not spent or not progress[0]:
        return []
    done, total = progress
    left = (total - done) / done
    rest = {
        k: spent[k] * left
        for k in ("prompt_tokens", "completion_tokens", "accelerator_hours")
        if spent.get(k)
    }
    rest = {k: round(v) if k.endswith("tokens") else round(v, 3) for k, v in rest.items()}
    if spent.get("money") is not None:
        rest["money"] = round(spent["money"] * left, 6)
    return [
        f"part-done: {done:,} of {total:,} prompts ({100 * done / total:.0f}%); spent so far {describe_spent(spent)}",
        f"to finish, at the rate so far: about {describe_spent(rest)}",
    ]


def run_summary(
    run: Path, done: list[tuple[str, str]], state: dict, seconds: float, prices: Prices | None = None
) -> list[str]:
    """The run's closing lines: per stage its time (this run's, or 'up to date'), counts in and
    out, what it spent, and its output; then the run's cost (per kept SFT row where the filter
    ran), the run folder and the logs."""
    if not done:
        return []
    rows = [("stage", "time", "in", "out", "spent", "output")]
    for stage, status in done:
        folder = _stage_outputs(run)[stage]
        secs = state["stages"].get(stage, {}).get("seconds")
        if status == "up to date":
            time_s = "up to date"
        elif status == "failed":
            time_s = "failed" + (f" ({duration(secs)})" if secs is not None else "")
        else:
            time_s = duration(secs) if secs is not None else "?"
        spent = stage_spent(stage, folder, prices) if folder.exists() else None
        spent_s = describe_spent(spent) if spent else ""
        if status == "failed":
            log = run / LOGS / f"{stage}.log"
            rows.append((stage, time_s, "", "", spent_s, f"log: {log}" if log.is_file() else ""))
            continue
        facts = stage_facts(stage, folder)
        rows.append((stage, time_s, facts[0], facts[1], spent_s, facts[2]))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [f"run summary ({duration(seconds)}):"]
    for r in rows:
        lines.append("  " + "  ".join(f"{c:<{w}}" for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
    total = run_spent(run, prices)
    if total:
        lines.append(
            f"run cost: {describe_spent(total)}"
            + ("" if prices and prices.priced else " (unpriced: set run.cost)")
        )
    report = _read_json(_stage_outputs(run)["filter"] / "report.json")
    per = (report.get("cost") or {}).get("per_kept_row") or {}
    if per.get("teacher_tokens") is not None:
        money_s = (
            f", {fmt_money(per['money'], report['cost'].get('currency') or 'USD')}"
            if per.get("money") is not None
            else ""
        )
        lines.append(
            f"per kept SFT row: {per['teacher_tokens']:,.1f} teacher tokens{money_s} (report: filter/report.md)"
        )
    logs = run / LOGS
    lines.append(f"run folder: {run}" + (f"   logs: {logs}" if logs.is_dir() else ""))
    return [line.rstrip() for line in lines]
