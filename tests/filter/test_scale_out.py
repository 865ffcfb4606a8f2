"""The filter scaled out: W first-pass workers (`--num-workers W --worker-index I`), each over the
input files k % W == I, then `--merge` on one node, give the same bytes as one process; a merge
with a worker's shards missing names the worker, and workers or a merge with other settings are
refused."""

from __future__ import annotations

import json
import subprocess

import pyarrow.parquet as pq
import pytest

from distill.errors import UserError
from distill.filter.run import run_filter
from distill.schema import TRACE_SCHEMA, to_table
from distill.stages import load_stage_config
from tests.conftest import DISTILL
from tests.filter.helpers import edit_to, gsm8k, real_reasoning, trace

W = 3
FILES = 7


@pytest.fixture
def inputs(tmp_path):
    """7 input files (6 Parquet, 1 JSONL) whose rows meet across files, and so across workers:
    samples of one prompt spread over files (selection, pass rates, preference pairs), exact and
    near duplicates of rows in other files (dedup), ids repeated in later files (input rejects:
    'first in' the earliest file, which one worker alone does not see), a contaminated prompt, a
    wrong answer, a cut-off trace, a row of an unknown domain and a line that is no trace."""
    r, q = real_reasoning(), gsm8k(6)
    files: list[list[dict]] = [[] for _ in range(FILES)]
    for n in range(40):
        p = n % 6
        gold = q[p]["answer"].split("####")[-1].strip().replace(",", "")
        right = n % 5 != 3
        content = f"So the answer is \\boxed{{{gold if right else int(gold) + 1}}}."
        if n < 10 or 20 <= n < 26:  # 20-25: exact copies of 0-5's reasoning
            text = r[n % 10]
        elif n < 20:  # near copies
            text = edit_to(r[n % 10], 0.85, seed=n)[0]
        else:  # a word added: near copies at ~0.99
            text = f"{r[n % 10]} ({n})"
        tokens = 300 + 37 * ((n * 7) % 11)
        row = trace(f"r{n}", f"q{p}", n // 6, text, content, tokens=tokens, problem=q[p]["question"])
        row["answer"] = gold
        files[(n * 3) % FILES].append(row)  # r0 in file 0, r1 in file 3, r2 in file 6, ...
    files[1].append(trace("r1", "q1", 9, r[2], "\\boxed{1}", problem=q[1]["question"]))  # before file 3's
    files[6].append(trace("r1", "q1", 8, r[3], "\\boxed{1}", problem=q[1]["question"]))
    files[5].append(trace("r2", "q2", 9, r[4], "\\boxed{1}", problem=q[2]["question"]))  # before file 6's
    files[3].append(trace("u0", "q9", 0, r[5], "blue", domain="chemistry", problem="What color?"))
    cut = trace(
        "t0", "q0", 7, r[6], f"\\boxed{{{files[0][0]['answer']}}}", finish="length", problem=q[0]["question"]
    )
    cut["answer"] = files[0][0]["answer"]  # right, but cut off: readability
    files[2].append(cut)
    folder = tmp_path / "in"
    folder.mkdir()
    for k, rows in enumerate(files[:-1]):
        pq.write_table(to_table(rows, TRACE_SCHEMA), folder / f"part-{k}.parquet")
    lines = [json.dumps(x) for x in files[-1]] + ['{"id": "broken"']
    (folder / f"part-{FILES - 1}.jsonl").write_text("\n".join(lines) + "\n")
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"question": q[5]["question"]}) + "\n")
    return folder, bench


def config(folder, bench, out, **select):
    return load_stage_config(
        "filter",
        None,
        {
            "input": str(folder),
            "output": str(out),
            "workers": 2,
            "verify.math.workers": 1,
            "decontaminate.benchmarks": [str(bench)],
            "select.preference_pairs": True,
            **{f"select.{k}": v for k, v in select.items()},
        },
    )


def quiet(message: str) -> None:
    pass


def outputs(out):
    """The output's bytes, but the manifests' (times, paths): data files, rejects.jsonl, report."""
    files = {}
    for sub in ("sft", "rejects", "pairs"):
        for path in sorted((out / sub / "data").glob("*.parquet")):
            files[str(path.relative_to(out))] = path.read_bytes()
    for name in ("rejects.jsonl", "report.json", "report.md"):
        files[name] = (out / name).read_bytes()
    return files


def test_three_workers_then_merge_give_the_bytes_of_one_process(inputs, tmp_path):
    folder, bench = inputs
    one = run_filter(config(folder, bench, tmp_path / "one"), log=quiet)
    out = tmp_path / "many"
    for i in range(W):  # worker 0 first: it cannot see the earlier files of r1 and r2 (1 and 5)
        part = run_filter(config(folder, bench, out), log=quiet, num_workers=W, worker_index=i)
        assert not part.complete and part.input_files == len(range(i, FILES, W))
        assert not (out / "sft").exists() and not (out / "manifest.json").exists()
    logs: list[str] = []
    merged = run_filter(config(folder, bench, out), log=logs.append, merge=True)
    assert merged.complete and (merged.rows, merged.kept, merged.funnel) == (one.rows, one.kept, one.funnel)
    assert any("repeat the id of a row in another worker's input file" in m for m in logs)
    a, b = outputs(tmp_path / "one"), outputs(out)
    assert list(a) == list(b) and "pairs/data/train-00000-of-00001.parquet" in a
    for name in a:
        assert a[name] == b[name], name
    # what the equality covers: every kind of decision, and repeats across workers' files
    rejects = {(x["id"], x["sample_index"]): x for x in pq.read_table(out / "rejects" / "data").to_pylist()}
    stages = {x["reject_stage"] for x in rejects.values()}
    assert {"input", "decontaminate", "verify", "readability", "dedup", "select"} <= stages
    for key in (("r1", 0), ("r1", 8)):  # worker 0 saw r1 first in file 3
        assert rejects[key]["reject_reason"] == "duplicate_id: 'r1' first in part-1.parquet"
    assert rejects[("r2", 0)]["reject_reason"] == "duplicate_id: 'r2' first in part-5.parquet"
    assert not (out / "work").exists()  # gone once complete, as after one process
    logs.clear()
    run_filter(config(folder, bench, out), log=logs.append, merge=True)
    assert any("nothing to do" in m for m in logs)


def test_a_merge_with_a_worker_missing_names_it(inputs, tmp_path):
    folder, bench = inputs
    out = tmp_path / "out"
    with pytest.raises(UserError, match="no first pass to merge"):
        run_filter(config(folder, bench, out), log=quiet, merge=True)
    for i in (0, 2):
        run_filter(config(folder, bench, out), log=quiet, num_workers=W, worker_index=i)
    with pytest.raises(UserError) as err:
        run_filter(config(folder, bench, out), log=quiet, merge=True)
    message = str(err.value)
    assert "worker 1 of 3 never ran" in message and "worker 0" not in message and "worker 2" not in message
    assert (
        "1 (part-1.parquet), 4 (part-4.parquet)" in message and "--num-workers 3 --worker-index 1" in message
    )
    run_filter(config(folder, bench, out), log=quiet, num_workers=W, worker_index=1)
    (out / "work" / "data" / "train-00005-of-00007.parquet").unlink()  # a shard of worker 2 lost
    with pytest.raises(UserError, match=r"worker 2 of 3 did not finish: work shards 5 \(part-5.parquet\)"):
        run_filter(config(folder, bench, out), log=quiet, merge=True)
    run_filter(config(folder, bench, out), log=quiet, num_workers=W, worker_index=2)  # redoes shard 5 alone
    assert run_filter(config(folder, bench, out), log=quiet, merge=True).complete


def test_workers_and_a_merge_with_other_settings_are_refused(inputs, tmp_path):
    folder, bench = inputs
    out = tmp_path / "out"
    run_filter(config(folder, bench, out), log=quiet, num_workers=W, worker_index=0)
    with pytest.raises(UserError, match="different settings"):
        run_filter(config(folder, bench, out, max_per_prompt="all"), log=quiet, num_workers=W, worker_index=1)
    for i in (1, 2):
        run_filter(config(folder, bench, out), log=quiet, num_workers=W, worker_index=i)
    with pytest.raises(UserError, match="that first-pass worker ran with another config"):
        run_filter(config(folder, bench, out, max_per_prompt="all"), log=quiet, merge=True)
    (folder / "part-0.parquet").rename(folder / "part-0b.parquet")  # another input
    with pytest.raises(UserError, match="ran with another input"):
        run_filter(config(folder, bench, out), log=quiet, merge=True)


def test_bad_worker_arguments(inputs, tmp_path):
    folder, bench = inputs
    cfg = config(folder, bench, tmp_path / "out")
    with pytest.raises(UserError, match=r"--worker-index 3 must be in \[0, --num-workers 3\)"):
        run_filter(cfg, log=quiet, num_workers=3, worker_index=3)
    with pytest.raises(UserError, match="leave out --num-workers"):
        run_filter(cfg, log=quiet, num_workers=3, merge=True)


def test_a_plain_run_finishes_what_the_workers_left(inputs, tmp_path):
    """Without --merge, a run does the first pass of the files no worker did, then the rest: the
    same output as one process from the start."""
    folder, bench = inputs
    run_filter(config(folder, bench, tmp_path / "one"), log=quiet)
    out = tmp_path / "out"
    run_filter(config(folder, bench, out), log=quiet, num_workers=W, worker_index=1)
    run_filter(config(folder, bench, out), log=quiet)
    a, b = outputs(tmp_path / "one"), outputs(out)
    assert list(a) == list(b)
    for name in a:
        assert a[name] == b[name], name


def test_the_command_line(inputs, tmp_path):
    """The flags reach the stage: a worker says what is next; a merge without the other workers
    names them (exit code 2, one error line); a merge with --num-workers is refused."""
    folder, bench = inputs
    out = tmp_path / "out"
    common = [
        *DISTILL,
        "filter",
        str(folder),
        "-o",
        str(out),
        "--decontaminate",
        str(bench),
        "--workers",
        "1",
    ]
    done = subprocess.run(
        [*common, "--num-workers", "2", "--worker-index", "1"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "first pass of worker 1 of 2: 3 input files" in done.stderr and "--merge" in done.stderr
    assert (out / "work" / "manifests" / "worker-00001-of-00002.json").is_file()
    done = subprocess.run([*common, "--merge"], capture_output=True, text=True)
    assert done.returncode == 2 and "worker 0 of 2 never ran" in done.stderr, done.stderr
    done = subprocess.run([*common, "--merge", "--num-workers", "2"], capture_output=True, text=True)
    assert done.returncode == 2 and "leave out --num-workers" in done.stderr, done.stderr
