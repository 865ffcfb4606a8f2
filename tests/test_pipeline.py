"""`distill run`: stages skipped when up to date, redone when their config or inputs change,
and a failed stage stops the run with the finished stages intact."""

from __future__ import annotations

import json
import subprocess

import pyarrow.parquet as pq
import pytest

from distill.schema import TRACE_SCHEMA, to_table
from tests.conftest import DISTILL
from tests.filter.helpers import real_reasoning, trace


@pytest.fixture
def run_dir(tmp_path):
    """A run folder whose generate stage is already there (traces + a complete manifest)."""
    r = real_reasoning()
    rows = [trace(f"x{i}", f"p{i}", 0, r[i], "\\boxed{1}", domain="general") for i in range(4)]
    gen = tmp_path / "run" / "generate"
    (gen / "data").mkdir(parents=True)
    pq.write_table(to_table(rows, TRACE_SCHEMA), gen / "data" / "train-00000-of-00001.parquet")
    (gen / "manifest.json").write_text(json.dumps({"complete": True, "v": 1}))
    return tmp_path / "run"


def recipe(tmp_path, run_dir, per_prompt=1, stages="[filter]", extra=""):
    p = tmp_path / "r.yaml"
    p.write_text(
        f"""name: t
run: {{output: {run_dir}, stages: {stages}}}
filter:
  workers: 1
  verify: {{domains: {{general: none}}}}
  select: {{max_per_prompt: {per_prompt}}}
{extra}"""
    )
    return p


def run(recipe_path):
    return subprocess.run([*DISTILL, "run", str(recipe_path)], capture_output=True, text=True, timeout=300)


def stamp(folder):
    return (folder / "manifest.json").stat().st_mtime_ns


def test_skip_when_up_to_date_redo_when_config_or_input_changes(tmp_path, run_dir):
    first = run(recipe(tmp_path, run_dir))
    assert first.returncode == 0, first.stderr[-2000:]
    assert "[filter] distill filter" in first.stderr
    state = json.loads((run_dir / "run.json").read_text())
    assert state["stages"]["filter"]["complete"]
    before = stamp(run_dir / "filter")

    again = run(recipe(tmp_path, run_dir))
    assert again.returncode == 0 and "[filter] up to date" in again.stderr
    assert stamp(run_dir / "filter") == before

    changed = run(recipe(tmp_path, run_dir, per_prompt="all"))
    assert changed.returncode == 0 and "[filter] inputs or config changed" in changed.stderr
    assert stamp(run_dir / "filter") != before
    after_config = stamp(run_dir / "filter")

    (run_dir / "generate" / "manifest.json").write_text(json.dumps({"complete": True, "v": 2}))
    upstream = run(recipe(tmp_path, run_dir, per_prompt="all"))
    assert upstream.returncode == 0 and "[filter] inputs or config changed" in upstream.stderr
    assert stamp(run_dir / "filter") != after_config


def test_failed_stage_stops_the_run_and_keeps_finished_stages(tmp_path, run_dir):
    bad_train = "train:\n  model: /nonexistent/student\n"
    out = run(recipe(tmp_path, run_dir, stages="[filter, train]", extra=bad_train))
    assert out.returncode == 2
    assert (
        "stage train failed" in out.stderr and "Traceback" not in out.stderr.split("stage train failed")[-1]
    )
    state = json.loads((run_dir / "run.json").read_text())
    assert state["stages"]["filter"]["complete"] and not state["stages"]["train"]["complete"]
    assert (run_dir / "filter" / "manifest.json").is_file()


def test_unknown_stage_is_a_clear_error(tmp_path, run_dir):
    out = run(recipe(tmp_path, run_dir, stages="[filter, distill-more]"))
    assert out.returncode == 2 and "unknown stage 'distill-more'" in out.stderr


def test_mix_stage_reads_the_run_folder(tmp_path, run_dir):
    extra = "mix:\n  sources:\n    - {path: '{run}/filter/sft', rows: 3}\n  seed: 1\n"
    out = run(recipe(tmp_path, run_dir, per_prompt="all", stages="[filter, mix]", extra=extra))
    assert out.returncode == 0, out.stderr[-2000:]
    manifest = json.loads((run_dir / "mix" / "manifest.json").read_text())
    assert manifest["totals"]["rows"] == 3
    assert manifest["sources"][0]["path"] == str(run_dir / "filter" / "sft")
