"""`distill run`: stages skipped when up to date, redone when their config or inputs change,
and a failed stage stops the run with the finished stages intact. The closing summary: each
stage's time, counts in and out, and where its output is; each stage's library output in
RUN/logs/<stage>.log."""

from __future__ import annotations

import json
import subprocess

import pyarrow.parquet as pq
import pytest

from distill.pipeline import run_summary
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


# --- the closing summary ----------------------------------------------------------------------


def write(path, doc):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def test_summary_lists_every_stage_with_time_counts_and_outputs(tmp_path):
    run_folder = tmp_path / "run"
    write(
        run_folder / "generate/manifest.json",
        {"totals": {"prompts": 16, "rows": 64, "completion_tokens": 20480}},
    )
    write(run_folder / "filter/manifest.json", {"totals": {"rows": 64, "kept": 60}})
    write(
        run_folder / "train/manifest.json",
        {"data": {"rows_kept": 60}, "training": {"global_step": 24, "train_loss": 1.23456}},
    )
    write(
        run_folder / "eval/results.json",
        {"benchmarks": {"gsm8k-heldout": {"num_problems": 16, "metrics": {"pass@1": 0.03125}}}},
    )
    (run_folder / "logs").mkdir()
    (run_folder / "logs" / "train.log").write_text("x\n")
    state = {
        "stages": {"generate": {"seconds": 111.1}, "filter": {"seconds": 4.0}, "train": {"seconds": 3725.0}}
    }
    done = [("generate", "ran"), ("filter", "up to date"), ("train", "ran"), ("eval", "failed")]
    lines = run_summary(run_folder, done, state, 4000.0)
    assert lines[0] == "run summary (1 h 06 min):"
    header, gen, filt, train, ev = lines[1:6]
    assert header.split() == ["stage", "time", "in", "out", "spent", "output"]
    assert gen.split()[:2] == ["generate", "1"] and "16 prompts" in gen and "64 samples, 20,480 tokens" in gen
    assert gen.endswith(str(run_folder / "generate"))
    assert (
        "up to date" in filt
        and "64 traces" in filt
        and "60 kept" in filt
        and str(run_folder / "filter/sft") in filt
    )
    assert "1 h 02 min" in train and "60 conversations" in train and "24 steps, loss 1.235" in train
    assert ev.split()[:2] == ["eval", "failed"]  # no log for it: nothing more
    assert lines[-1] == f"run folder: {run_folder}   logs: {run_folder / 'logs'}"
    # columns line up
    assert len({line.index(str(run_folder)) for line in (gen, train)}) == 1


def test_a_priced_run_shows_each_stages_cost_the_total_and_the_cost_per_kept_row(tmp_path):
    from distill.cost import Prices

    run_folder = tmp_path / "run"
    write(
        run_folder / "generate/manifest.json",
        {"totals": {"prompts": 16, "rows": 64, "completion_tokens": 20000}},
    )
    spent = {"requests": 16, "prompt_tokens": 4000, "completion_tokens": 20000, "wall_s": 1800.0,
             "cpu_s": 10.0, "accelerators": 1, "accelerator_hours": 0.5}  # fmt: skip
    write(run_folder / "generate/spent/worker-00000.json", {"runs": [spent]})
    write(run_folder / "filter/manifest.json", {"totals": {"rows": 64, "kept": 40}})
    write(
        run_folder / "filter/report.json",
        {"cost": {"per_kept_row": {"teacher_tokens": 600.0, "money": 0.05}, "currency": "USD"}},
    )
    write(
        run_folder / "train/manifest.json",
        {"data": {"rows_kept": 40}, "runtime": {"world_size": 2, "cuda": True},
         "training": {"global_step": 10, "wall_s": 5400.0}},
    )  # fmt: skip
    prices = Prices(input_per_million=1.0, output_per_million=2.0, accelerator_hour=4.0)
    state = {
        "stages": {"generate": {"seconds": 1800.0}, "filter": {"seconds": 4.0}, "train": {"seconds": 5400.0}}
    }
    done = [("generate", "ran"), ("filter", "ran"), ("train", "ran")]
    lines = run_summary(run_folder, done, state, 7300.0, prices)
    gen, filt, train = lines[2:5]
    # generate: 4,000 x $1/M + 20,000 x $2/M + 0.5 h x $4 = $2.044; train: 2 GPUs x 1.5 h x $4 = $12
    assert "24,000 tokens (4,000 in, 20,000 out), 0.50 accelerator-h, $2.04" in gen
    assert "3.00 accelerator-h, $12.00" in train
    assert "tokens" not in filt.split("kept")[1].split(str(run_folder))[0]  # the filter spent no tokens
    assert "run cost: 24,000 tokens (4,000 in, 20,000 out), 3.50 accelerator-h, $14.04" in lines
    assert "per kept SFT row: 600.0 teacher tokens, $0.0500 (report: filter/report.md)" in lines


def test_a_part_done_generate_says_what_it_spent_and_what_the_rest_will_cost(tmp_path):
    from distill.cost import Prices
    from distill.pipeline import part_done_lines

    folder = tmp_path / "generate"
    write(
        folder / "manifests/worker-00000-of-00001.json",
        {"info": {"prompts": 100}, "shards": {"data/train-00000-of-00004.parquet": {"prompts": 25}}},
    )
    spent = {"requests": 25, "prompt_tokens": 2500, "completion_tokens": 50000, "accelerator_hours": 1.0}
    write(folder / "spent/worker-00000.json", {"runs": [spent]})
    lines = part_done_lines("generate", folder, Prices(output_per_million=10.0))
    assert lines[0] == (
        "part-done: 25 of 100 prompts (25%); spent so far 52,500 tokens (2,500 in, 50,000 out), 1.00 accelerator-h, $0.5000"
    )
    # three times as much again
    assert (
        lines[1]
        == "to finish, at the rate so far: about 157,500 tokens (7,500 in, 150,000 out), 3.00 accelerator-h, $1.50"
    )
    write(folder / "manifest.json", {"complete": True})
    assert part_done_lines("generate", folder, None) == []


def test_a_run_ends_with_its_summary_and_prints_only_its_folder_on_stdout(tmp_path, run_dir):
    out = run(recipe(tmp_path, run_dir))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str(run_dir)  # the stages' own result lines are not mixed in
    summary = out.stderr[out.stderr.index("run summary") :].splitlines()
    assert summary[2].split()[0] == "filter" and "4 traces" in summary[2]
    again = run(recipe(tmp_path, run_dir))
    assert "up to date" in again.stderr[again.stderr.index("run summary") :]


def test_run_cost_goes_to_generate_and_adaptive_sampling_gets_the_filters_verify_policy(tmp_path):
    from distill.pipeline import _wire

    data = {
        "generate": {
            "input": {"path": "p.jsonl"},
            "sampling": {"num_samples": 2, "until_pass": 1, "max_samples": 8},
        },
        "filter": {"verify": {"math": {"answer_format": "lenient"}}},
    }
    out = {"generate": tmp_path / "generate"}
    prices = {
        "input_per_million": 1.0,
        "output_per_million": 2.0,
        "accelerator_hour": None,
        "currency": "USD",
    }
    section, argv = _wire("generate", data, out, ["generate", "filter"], None, prices)
    assert section["cost"] == prices and section["verify"] == {"math": {"answer_format": "lenient"}}
    assert argv[:2] == ["generate", "p.jsonl"]
    own = {
        "generate": {**data["generate"], "cost": {"accelerator_hour": 3.0}, "verify": {"on_error": "keep"}}
    }
    section, _ = _wire("generate", {**data, **own}, out, ["generate", "filter"], None, prices)
    assert section["cost"] == {"accelerator_hour": 3.0} and section["verify"] == {"on_error": "keep"}
