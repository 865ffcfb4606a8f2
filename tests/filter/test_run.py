"""The filter stage end to end on real text (s1K reasoning traces, GSM8K problems), math domain."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from distill.config import ConfigError
from distill.errors import UserError
from distill.filter.run import run_filter
from distill.schema import TRACE_SCHEMA, to_table
from distill.stages import load_stage_config
from tests.filter.helpers import gsm8k, real_reasoning, trace


@pytest.fixture
def traces(tmp_path):
    r = real_reasoning()
    q = gsm8k(4)
    rows = [
        trace("a0", "p1", 0, r[0], "So she makes \\boxed{18} dollars.", tokens=900, problem=q[0]["question"]),
        trace("a1", "p1", 1, r[1], "The answer is \\boxed{18}.", tokens=500, problem=q[0]["question"]),
        trace("a2", "p1", 2, r[2], "The answer is \\boxed{20}.", tokens=400, problem=q[0]["question"]),
        trace("a3", "p1", 3, r[3], None, finish="length", tokens=4096, problem=q[0]["question"]),
        trace("b0", "p2", 0, r[4], "\\boxed{3}", tokens=700, problem=q[1]["question"]),
        trace("b1", "p2", 1, r[4], "\\boxed{3}", tokens=650, problem=q[1]["question"]),  # same reasoning
        trace(
            "c0",
            "p3",
            0,
            r[5] + "\n\n这是一个关于数学的问题，我们需要仔细思考每一步的计算过程。" * 8,
            "\\boxed{70000}",
            problem=q[2]["question"],
        ),
        trace("d0", "p4", 0, r[6], "\\boxed{540}", problem=q[3]["question"]),
        trace(
            "e0",
            "p5",
            0,
            r[7],
            "Paris is the capital of France.",
            domain="general",
            problem="Capital of France?",
        ),
        trace("f0", "p6", 0, r[8], "\\boxed{12}", problem="A problem without a gold answer."),
    ]
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in rows) + '{"id": "broken"\n')
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"question": q[3]["question"]}) + "\n")
    return path, bench, rows


def config(path, out, bench, **select):
    return load_stage_config(
        "filter",
        None,
        {
            "input": str(path),
            "output": str(out),
            "workers": 1,
            "verify.math.workers": 1,
            "verify.domains": {"general": "none"},
            "decontaminate.benchmarks": [str(bench)],
            **{f"select.{k}": v for k, v in select.items()},
        },
    )


def read(folder):
    return [r for p in sorted((folder / "data").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def test_every_row_is_kept_or_rejected_with_its_reason(traces, tmp_path):
    path, bench, rows = traces
    summary = run_filter(config(path, tmp_path / "out", bench), log=lambda m: None)
    out = tmp_path / "out"
    kept, rejected = read(out / "sft"), read(out / "rejects")
    assert {r["id"] for r in kept} | {r["id"] for r in rejected} == {r["id"] for r in rows}
    assert not {r["id"] for r in kept} & {r["id"] for r in rejected}
    why = {r["id"]: (r["reject_stage"], r["reject_reason"]) for r in rejected}
    assert why["a2"] == ("verify", "fail: wrong answer")
    # cut off before </think>: verified on the reasoning's tail (no matching box there), so a failure
    assert why["a3"][0] == "verify" and why["a3"][1].startswith("fail:")
    assert why["a0"][0] == "select"  # a longer correct sample of p1 than a1
    assert why["b0"][0] == "dedup" and "b1" in why["b0"][1]  # the shorter copy survives
    assert why["c0"][0] == "readability" and why["c0"][1].startswith("language_mixing")
    assert why["d0"][0] == "decontaminate" and "bench.jsonl" in why["d0"][1]
    assert why["f0"] == ("verify", "error: no gold answer")
    assert sorted(r["id"] for r in kept) == ["a1", "b1", "e0"]
    by_id = {r["id"]: r for r in kept + rejected}
    assert by_id["a1"]["verdict"] == "pass" and by_id["a2"]["verdict"] == "fail"
    assert by_id["e0"]["verdict"] is None and by_id["f0"]["verdict"] == "error"
    assert by_id["a1"]["pass_rate"] == pytest.approx(0.5)  # a0, a1 pass; a2, a3 fail
    # the broken input line is recorded, not lost
    bad = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert len(bad) == 1 and bad[0]["line"] == 11 and bad[0]["reason"].startswith("malformed JSON")
    assert summary.kept == 3 and summary.rows == 11  # the broken line counts as an input row


def test_sft_rows_carry_messages_with_the_reasoning(traces, tmp_path):
    path, bench, _ = traces
    run_filter(config(path, tmp_path / "out", bench), log=lambda m: None)
    row = next(r for r in read(tmp_path / "out" / "sft") if r["id"] == "a1")
    user, assistant = row["messages"]
    assert user == {"role": "user", "content": row["prompt"]}
    assert assistant["role"] == "assistant"
    assert assistant["content"] == f"<think>\n{row['reasoning']}\n</think>\n\n{row['content']}"
    import datasets

    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "out" / "sft"), split="train")
    assert ds.num_rows == 3 and "messages" in ds.column_names


def test_report_funnel_and_manifest(traces, tmp_path):
    path, bench, _ = traces
    run_filter(config(path, tmp_path / "out", bench), log=lambda m: None)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    funnel = {f["stage"]: f["dropped"] for f in report["funnel"]}
    assert funnel == {
        "input": 1,  # the broken line (rejects.jsonl)
        "decontaminate": 1,
        "verify": 3,
        "readability": 1,
        "difficulty": 0,
        "dedup": 1,
        "select": 1,
    }
    assert report["funnel"][-1]["rows"] == report["kept"] == 3
    assert report["verdicts"] == {"error": 1, "fail": 2, "none": 1, "pass": 6}, report["verdicts"]
    # reasons per kind, not per row: the duplicate's reason names the row it copies, the report not
    assert report["reasons"] == {
        "input: malformed JSON": 1,
        "decontaminate: contaminated (bench.jsonl)": 1,
        "verify: fail: wrong answer": 1,
        "verify: fail: no final answer": 1,
        "verify: error: no gold answer": 1,
        "readability: language_mixing": 1,
        "dedup: exact_duplicate": 1,
        "select: max_per_prompt=1": 1,
    }, report["reasons"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| verify | 3 | 6 |" in md
    for plot in report["plots"]:
        assert (tmp_path / "out" / plot).read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["totals"] == {"rows": 11, "kept": 3, "rejected": 8}
    assert not (tmp_path / "out" / "work").exists()


def test_deterministic_and_resumable(traces, tmp_path):
    path, bench, _ = traces
    for name in ("a", "b"):
        run_filter(config(path, tmp_path / name, bench), log=lambda m: None)
    for sub in ("sft", "rejects"):
        a, b = read(tmp_path / "a" / sub), read(tmp_path / "b" / sub)
        assert [(r["id"], r["reject_reason"]) for r in a] == [(r["id"], r["reject_reason"]) for r in b]
    logs = []
    run_filter(config(path, tmp_path / "a", bench), log=logs.append)
    assert any("nothing to do" in m for m in logs)
    with pytest.raises(UserError, match="another input or config"):
        run_filter(config(path, tmp_path / "a", bench, max_per_prompt="all"), log=lambda m: None)


def test_max_per_prompt_all_difficulty_band_and_pairs(traces, tmp_path):
    path, bench, _ = traces
    cfg = config(
        path, tmp_path / "out", bench, max_per_prompt="all", difficulty=(0.5, 0.9), preference_pairs=True
    )
    run_filter(cfg, log=lambda m: None)
    kept = sorted(r["id"] for r in read(tmp_path / "out" / "sft"))
    assert kept == ["a0", "a1"]  # p1 (pass rate 0.5) is inside the band; p2 (1.0) and e0 (none) are not
    why = {r["id"]: r["reject_reason"] for r in read(tmp_path / "out" / "rejects")}
    assert why["b1"] == "outside_band: pass rate 1.00 not in [0.5, 0.9]"
    pairs = read(tmp_path / "out" / "pairs")
    assert [(p["chosen_id"], p["rejected_id"]) for p in pairs] == [("a1", "a3")]  # longest failing sample


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "parquet with a bad row"])
def test_dedup_prompts_drops_every_sample_of_a_near_duplicate_problem(traces, tmp_path, fmt):
    """`dedup.prompts`: p7 asks GSM8K's first question again, one word added (its own reasoning, a
    right answer): its samples go, p1's stay. The prompt of the best sample survives (a1: passing,
    500 tokens; p7's are longer). Off by default. A Parquet input with a bad row (an empty
    completion: a reject) has more rows than its work shard: its problems are read row by row."""
    _, bench, rows = traces
    r, q = real_reasoning(), gsm8k(1)[0]["question"]
    twins = [
        trace(f"g{k}", "p7", k, r[9 - k], "\\boxed{18}", tokens=800 + k, problem=q + " Explain.")
        for k in (0, 1)
    ]
    for row in twins:
        row["answer"] = "18"
    rows = rows + twins
    if fmt == "parquet with a bad row":
        rows = [{**rows[0], "id": "bad", "completion": ""}, *rows]
    path = tmp_path / ("traces.jsonl" if fmt == "jsonl" else "traces.parquet")
    if fmt != "jsonl":
        pq.write_table(to_table(rows, TRACE_SCHEMA), path)
    else:
        path.write_text("".join(json.dumps(x) + "\n" for x in rows))
    cfg = config(path, tmp_path / "on", bench, max_per_prompt="all")
    cfg.dedup.prompts = True
    run_filter(cfg, log=lambda m: None)
    why = {x["id"]: x["reject_reason"] for x in read(tmp_path / "on" / "rejects")}
    assert why["g0"] == why["g1"] == "near_duplicate_prompt: problem of p7 duplicates p1"
    assert {"a0", "a1"} <= {x["id"] for x in read(tmp_path / "on" / "sft")}
    run_filter(config(path, tmp_path / "off", bench, max_per_prompt="all"), log=lambda m: None)
    assert {"a0", "a1", "g0", "g1"} <= {x["id"] for x in read(tmp_path / "off" / "sft")}


def test_an_empty_input_gives_an_empty_complete_output(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    logs: list[str] = []
    summary = run_filter(
        config(tmp_path / "empty.jsonl", tmp_path / "out", tmp_path / "none"), log=logs.append
    )
    assert summary.rows == summary.kept == 0
    assert any("no trace rows" in m for m in logs)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["totals"] == {"rows": 0, "kept": 0, "rejected": 0}


def test_bad_max_per_prompt_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="max_per_prompt"):
        load_stage_config("filter", None, {"select.max_per_prompt": 0})


def test_input_rejects_survive_a_resumed_run(traces, tmp_path):
    """Files processed by an earlier (interrupted) run still report their bad rows."""
    path, bench, _ = traces
    cfg = config(path, tmp_path / "out", bench)
    cfg.keep_work = True
    run_filter(cfg, log=lambda m: None)
    out = tmp_path / "out"
    (out / "manifest.json").unlink()  # as if the run had died after its first pass
    (out / "rejects.jsonl").unlink()
    logs = []
    run_filter(cfg, log=logs.append)
    assert any("resuming: 1 of 1 input files" in m for m in logs)
    bad = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert len(bad) == 1 and bad[0]["line"] == 11


def test_parquet_input_gives_the_same_output_as_jsonl(traces, tmp_path):
    """Parquet inputs take another road (this process never reads their reasoning; the workers
    read the texts from the file): same verdicts, rejects, SFT rows and pairs as the same rows in
    JSONL. g0's answer is only in its reasoning (blank content): math verification must read it."""
    _, bench, rows = traces
    r = real_reasoning()
    extra = trace("g0", "p2", 2, r[9] + "\n\nSo the total is \\boxed{3}.", "", tokens=300)
    rows = [*rows, extra]
    jsonl = tmp_path / "all.jsonl"
    jsonl.write_text("".join(json.dumps(x) + "\n" for x in rows))
    folder = tmp_path / "parquet"
    (folder / "data").mkdir(parents=True)
    for k, part in enumerate((rows[:6], rows[6:])):  # two files: the pipelined road
        pq.write_table(to_table(part, TRACE_SCHEMA), folder / "data" / f"train-{k:05d}-of-00002.parquet")
    outputs = {}
    for name, source in (("jsonl", jsonl), ("parquet", folder)):
        cfg = config(source, tmp_path / name, bench, max_per_prompt="all", preference_pairs=True)
        cfg.workers = 2
        run_filter(cfg, log=lambda m: None)
        out = tmp_path / name
        outputs[name] = (
            sorted((x["id"], x["verdict"], x["messages"][1]["content"]) for x in read(out / "sft")),
            sorted(
                (x["id"], x["verdict"], x["reject_stage"], x["reject_reason"]) for x in read(out / "rejects")
            ),
            sorted((x["chosen_id"], x["rejected_id"]) for x in read(out / "pairs")),
        )
    assert outputs["parquet"] == outputs["jsonl"]
    kept, rejected, pairs = outputs["parquet"]
    assert len(kept) + len(rejected) == len(rows) and pairs
    g0 = next(x for x in rejected if x[0] == "g0")
    assert g0[1] == "pass" and g0[2] == "readability"  # verified from its reasoning, then no final answer


def test_parquet_with_an_empty_completion_is_read_again_the_strict_way(traces, tmp_path):
    """A Parquet file whose statistics show no missing completion is first read without its
    completions (the workers check them); an empty one sends the file through the strict reader,
    which records that row as an input reject. The rest comes out as from the same rows in JSONL."""
    _, bench, rows = traces
    rows = [dict(x) for x in rows]
    assert all(x["completion_tokens"] is not None for x in rows)  # the deferred road is taken
    bad = next(x for x in rows if x["id"] == "b1")
    bad["completion"] = ""
    jsonl = tmp_path / "all.jsonl"
    jsonl.write_text("".join(json.dumps(x) + "\n" for x in rows))
    folder = tmp_path / "parquet"
    (folder / "data").mkdir(parents=True)
    for k, part in enumerate((rows[:6], rows[6:])):
        pq.write_table(to_table(part, TRACE_SCHEMA), folder / "data" / f"train-{k:05d}-of-00002.parquet")
    outputs = {}
    for name, source in (("jsonl", jsonl), ("parquet", folder)):
        cfg = config(source, tmp_path / name, bench, max_per_prompt="all")
        cfg.workers = 2
        run_filter(cfg, log=lambda m: None)
        out = tmp_path / name
        input_rejects = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
        outputs[name] = (
            sorted((x["id"], x["verdict"]) for x in read(out / "sft")),
            sorted((x["id"], x["reject_stage"], x["reject_reason"]) for x in read(out / "rejects")),
            len(input_rejects),
        )
        assert len(input_rejects) == 1 and "completion" in json.dumps(input_rejects[0])
        assert "b1" not in {x[0] for x in outputs[name][0] + outputs[name][1]}
    assert outputs["parquet"][:2] == outputs["jsonl"][:2]
    assert len(outputs["parquet"][0]) + len(outputs["parquet"][1]) == len(rows) - 1


def test_a_repeated_id_is_an_input_reject_not_a_shared_fate(traces, tmp_path):
    """Every second-pass decision is keyed by row id: a second row with a kept row's id would be
    kept or dropped with it. It goes to rejects/ (texts and all) with stage `input`, whether it
    repeats an id of its own file (Parquet) or of an earlier one (JSONL), also after a resume.
    So does a row of an unknown domain."""
    _, bench, _ = traces
    r, q = real_reasoning(), gsm8k(2)
    first = [
        trace("x", "p1", 0, r[0], "\\boxed{18}", tokens=500, problem=q[0]["question"]),
        trace("y", "p2", 0, r[1], "\\boxed{3}", tokens=500, problem=q[1]["question"]),
        trace("y", "p2", 1, r[2], "\\boxed{3}", tokens=400, problem=q[1]["question"]),  # same file
    ]
    first.append(trace("z", "p3", 0, r[4], "It is blue.", domain="chemistry", problem="What color?"))
    second = [trace("x", "p1", 1, r[3], "\\boxed{17}", tokens=300, problem=q[0]["question"])]
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(to_table(first, TRACE_SCHEMA), folder / "a.parquet")
    (folder / "b.jsonl").write_text(json.dumps(second[0]) + "\n")
    cfg = config(folder, tmp_path / "out", bench, preference_pairs=True)
    cfg.keep_work = True
    summary = run_filter(cfg, log=lambda m: None)
    assert not (tmp_path / "out" / "pairs").exists()  # the copy's wrong answer is no rejected sample
    kept = {(x["id"], x["sample_index"]) for x in read(tmp_path / "out" / "sft")}
    rejected = {(x["id"], x["sample_index"]): x for x in read(tmp_path / "out" / "rejects")}
    assert kept == {("x", 0), ("y", 0)}  # the first row of each id, though the copies are shorter
    rates = {x["id"]: x["pass_rate"] for x in read(tmp_path / "out" / "sft")}
    assert rates["x"] == 1.0  # the copy's wrong answer is no sample of p1
    for key, where in ((("y", 1), "a.parquet"), (("x", 1), "a.parquet")):
        assert rejected[key]["reject_stage"] == "input"
        assert rejected[key]["reject_reason"] == f"duplicate_id: {key[0]!r} first in {where}"
        assert rejected[key]["reasoning"]  # the row itself, not only its id
    # a domain no verifier knows is no usable trace either (it would be kept unverified)
    assert rejected[("z", 0)]["reject_stage"] == "input"
    assert rejected[("z", 0)]["reject_reason"].startswith("unknown_domain: 'chemistry' (known: math,")
    assert summary.funnel[0] == {"stage": "input", "rows": 2, "dropped": 3}
    # as if the run had died after the first file: b.jsonl's x is still a repeat of a.parquet's
    (tmp_path / "out" / "manifest.json").unlink()
    (tmp_path / "out" / "work" / "data" / "train-00001-of-00002.parquet").unlink()
    for done in ("sft", "rejects"):  # written after the first pass only
        shutil.rmtree(tmp_path / "out" / done)
    logs: list[str] = []
    run_filter(cfg, log=logs.append)
    assert any("resuming: 1 of 2 input files" in m for m in logs)
    assert {(x["id"], x["sample_index"]) for x in read(tmp_path / "out" / "sft")} == kept
    again = {(x["id"], x["sample_index"]): x["reject_reason"] for x in read(tmp_path / "out" / "rejects")}
    assert again[("x", 1)] == "duplicate_id: 'x' first in a.parquet"
