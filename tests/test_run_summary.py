"""`distill run`'s closing summary: each stage's time, counts in and out, and where its output is;
each stage's library output in RUN/logs/<stage>.log."""

from __future__ import annotations

import json

from distill.pipeline import run_summary
from tests.test_pipeline import recipe, run, run_dir  # noqa: F401 (run_dir: a fixture)


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
    assert header.split() == ["stage", "time", "in", "out", "output"]
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


def test_a_run_ends_with_its_summary_and_prints_only_its_folder_on_stdout(tmp_path, run_dir):  # noqa: F811
    out = run(recipe(tmp_path, run_dir))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str(run_dir)  # the stages' own result lines are not mixed in
    summary = out.stderr[out.stderr.index("run summary") :].splitlines()
    assert summary[2].split()[0] == "filter" and "4 traces" in summary[2]
    again = run(recipe(tmp_path, run_dir))
    assert "up to date" in again.stderr[again.stderr.index("run summary") :]
