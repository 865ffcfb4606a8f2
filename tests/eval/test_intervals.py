"""95% intervals of pass@1 and paired B − A differences, against hand-computed values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from distill.cli import app
from distill.eval.metrics import mean_interval, paired_difference, pass1_interval, problem_means
from distill.eval.report import comparison_table, paired_table, results_table

Z = 1.959963984540054  # the 97.5% quantile of the standard normal


def _bench(correct: dict[str, int], k: int = 4, sha: str = "f" * 64) -> dict:
    """One benchmark's results with per-problem records: {problem id: correct samples of k}."""
    problems = [
        {
            "id": pid,
            "correct": c,
            "samples": [{"index": i, "verdict": "pass" if i < c else "fail"} for i in range(k)],
        }
        for pid, c in correct.items()
    ]
    p1 = sum(c / k for c in correct.values()) / len(correct)
    return {"sha256": sha, "num_problems": len(problems), "metrics": {"pass@1": p1}, "problems": problems}


def _results(model: str, **benches: dict) -> dict:
    return {
        "model": model,
        "sampling": {"num_samples": 4, "temperature": 0.6, "top_p": 0.95},
        "benchmarks": benches,
    }


def _text(table) -> str:
    console = Console(width=250, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text()


def test_normal_interval_hand_computed():
    # mean 0.5; deviations .5, 0, 0, -.5: sample variance 0.5 / 3; SE = sqrt(1/6) / 2
    ci = mean_interval([1.0, 0.5, 0.5, 0.0])
    se = math.sqrt(1 / 6) / 2
    assert ci["mean"] == pytest.approx(0.5)
    assert ci["se"] == pytest.approx(se) == pytest.approx(0.2041241452)
    assert ci["lo"] == pytest.approx(0.5 - Z * se) == pytest.approx(0.0999248, abs=1e-6)
    assert ci["hi"] == pytest.approx(0.5 + Z * se) == pytest.approx(0.9000752, abs=1e-6)
    assert ci["n"] == 4 and ci["method"] == "normal" and ci["confidence"] == 0.95
    assert mean_interval([0.3])["lo"] is None and mean_interval([])["mean"] is None


def test_pass1_interval_from_per_problem_records_is_clipped_to_0_1():
    bench = _bench({"a": 4, "b": 2, "c": 2, "d": 0})
    assert problem_means(bench) == {"a": 1.0, "b": 0.5, "c": 0.5, "d": 0.0}
    ci = pass1_interval(bench)
    assert (ci["lo"], ci["hi"]) == (pytest.approx(0.0999248, abs=1e-6), pytest.approx(0.9000752, abs=1e-6))
    # means 1, 1, 1, .5: mean .875, SD .25, SE .125: .875 + 1.96 * .125 > 1 -> clipped
    ci = pass1_interval(_bench({"a": 4, "b": 4, "c": 4, "d": 2}))
    assert ci["lo"] == pytest.approx(0.875 - Z * 0.125) and ci["hi"] == 1.0
    assert pass1_interval({"metrics": {"pass@1": 0.5}}) is None  # no per-problem records: no interval
    stored = {"intervals": {"pass@1": {"lo": 0.1, "hi": 0.2, "confidence": 0.95}}}
    assert pass1_interval(stored)["lo"] == 0.1  # what `distill eval` stored wins


def test_paired_difference_hand_computed():
    a = _results("A", gsm8k=_bench({"p1": 0, "p2": 2, "p3": 1, "p4": 3}))
    b = _results("B", gsm8k=_bench({"p1": 2, "p2": 2, "p3": 2, "p4": 2}))
    # differences .5, 0, .25, -.25: mean .125; SS = .3125, variance .3125 / 3, SE = sqrt(that / 4)
    se = math.sqrt(0.3125 / 3 / 4)
    d = paired_difference(a, b, "gsm8k")
    assert d["diff"] == pytest.approx(0.125) and d["se"] == pytest.approx(se)
    assert d["lo"] == pytest.approx(0.125 - Z * se) == pytest.approx(-0.19129, abs=1e-5)
    assert d["hi"] == pytest.approx(0.125 + Z * se) == pytest.approx(0.44129, abs=1e-5)
    assert d["excludes_zero"] is False and d["n_problems"] == 4 and d["only_a"] == d["only_b"] == 0
    assert d["same_file"] is True and d["reason"] is None


def test_constant_paired_differences_give_a_zero_width_interval():
    a = _results("A", gsm8k=_bench({"p1": 0, "p2": 1, "p3": 2, "p4": 3}))
    b = _results("B", gsm8k=_bench({"p1": 1, "p2": 2, "p3": 3, "p4": 4}))
    d = paired_difference(a, b, "gsm8k")
    assert (
        d["diff"] == pytest.approx(0.25) and d["lo"] == pytest.approx(0.25) and d["hi"] == pytest.approx(0.25)
    )
    assert d["se"] == 0 and d["excludes_zero"] is True
    # unpaired, the same two models' intervals overlap: pairing is what makes the difference sure
    ia, ib = pass1_interval(a["benchmarks"]["gsm8k"]), pass1_interval(b["benchmarks"]["gsm8k"])
    assert ib["lo"] < ia["hi"]


def test_problems_in_one_side_only_are_counted_not_paired():
    a = _results("A", gsm8k=_bench({"p1": 0, "p2": 1, "p3": 2, "p4": 3, "p5": 4}))
    b = _results("B", gsm8k=_bench({"p2": 2, "p3": 3, "p4": 4, "p6": 0}, sha="e" * 64))
    d = paired_difference(a, b, "gsm8k")
    assert (d["n_problems"], d["only_a"], d["only_b"]) == (3, 2, 1)
    assert d["diff"] == pytest.approx(0.25) and d["same_file"] is False


def test_paired_difference_without_data_says_why():
    a = _results("A", gsm8k=_bench({"p1": 0, "p2": 1}))
    d = paired_difference(a, _results("B", gsm8k={"metrics": {"pass@1": 0.5}}), "gsm8k")
    assert d["diff"] is None and "per-problem" in d["reason"]
    d = paired_difference(a, _results("B"), "gsm8k")
    assert d["diff"] is None and "not in B" in d["reason"]
    d = paired_difference(a, _results("B", gsm8k=_bench({"x": 1, "y": 2})), "gsm8k")
    assert d["diff"] is None and d["only_a"] == 2 and d["only_b"] == 2
    d = paired_difference(a, _results("B", gsm8k=_bench({"p1": 1})), "gsm8k")
    assert d["diff"] == pytest.approx(0.25) and d["lo"] is None and d["excludes_zero"] is None


def test_seeded_bootstrap_is_stable_and_close_to_the_normal_interval():
    rng = np.random.default_rng(123)
    a_counts = rng.integers(0, 5, size=400)
    b_counts = np.clip(a_counts + rng.integers(-1, 3, size=400), 0, 4)
    a = _results("A", gsm8k=_bench({f"p{i}": int(c) for i, c in enumerate(a_counts)}))
    b = _results("B", gsm8k=_bench({f"p{i}": int(c) for i, c in enumerate(b_counts)}))
    boot = paired_difference(a, b, "gsm8k", method="bootstrap", seed=0)
    assert boot == paired_difference(a, b, "gsm8k", method="bootstrap", seed=0)  # same seed, same values
    other = paired_difference(a, b, "gsm8k", method="bootstrap", seed=1)
    assert (other["lo"], other["hi"]) != (boot["lo"], boot["hi"])
    normal = paired_difference(a, b, "gsm8k")
    assert boot["diff"] == normal["diff"] and boot["resamples"] == 10_000
    assert boot["lo"] == pytest.approx(normal["lo"], abs=0.006)
    assert boot["hi"] == pytest.approx(normal["hi"], abs=0.006)
    assert boot["se"] == pytest.approx(normal["se"], rel=0.05)
    assert boot["excludes_zero"] is normal["excludes_zero"] is True
    single = mean_interval(a_counts / 4, method="bootstrap", seed=7)
    assert single["lo"] == pytest.approx(mean_interval(a_counts / 4)["lo"], abs=0.01)


def test_results_table_shows_the_interval_and_counts():
    res = _results("m", gsm8k=_bench({"a": 4, "b": 2, "c": 2, "d": 0}) | {"num_samples": 16})
    text = _text(results_table(res))
    row = next(x for x in text.splitlines() if "gsm8k" in x)
    assert "[0.100, 0.900]" in row and " 16 " in row and " 4 " in row
    assert "normal approximation" in text


def test_compare_shows_the_paired_interval(tmp_path):
    a = _results("teacher", gsm8k=_bench({"p1": 0, "p2": 1, "p3": 2, "p4": 3, "p5": 4}))
    b = _results("student", gsm8k=_bench({"p1": 1, "p2": 2, "p3": 3, "p4": 4, "p6": 0}))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))  # a results file works as well as a folder
    res = CliRunner().invoke(app, ["eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b.json")])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    ci = next(x for x in lines if "pass@1 95% CI" in x)
    assert ci.count("[0.154, 0.846]") == 2  # A's and B's: means 0, .25, .5, .75, 1 (SE .25 / sqrt 2)
    overall = next(x for x in lines if "pass@1 " in x and "CI" not in x)
    assert "+0.000" in overall  # over all problems: B's extra problem fails, A's extra one passes
    paired = [x for x in lines if "gsm8k" in x][-1].replace("│", " ").split()
    # over the 4 shared problems B is ahead by exactly .25 on each: a zero-width interval
    assert paired == ["gsm8k", "4", "1", "1", "+0.250", "[+0.250,", "+0.250]", "yes"]
    assert "excl. 0" in res.output and "per-problem differences" in res.output
    # the same tables from the library, for the pipeline's before/after
    assert "+0.250" in _text(paired_table(a, b)) and "pass@1 95% CI" in _text(
        comparison_table(a, b, "x", "y")
    )


def test_compare_names_missing_records_and_different_files():
    a = _results("A", gsm8k=_bench({"p1": 0, "p2": 1}), math=_bench({"q": 1}))
    b = _results("B", gsm8k=_bench({"p1": 1, "p2": 2}, sha="e" * 64), math={"metrics": {"pass@1": 0.5}})
    text = " ".join(_text(paired_table(a, b)).split())
    assert "gsm8k: A and B used different benchmark files" in text
    assert "math: B has no per-problem records for math" in text


def test_score_benchmark_stores_the_interval_and_sample_count(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distill.eval.config import BenchmarkConfig
    from distill.eval.run import score_benchmark

    passes = {"p1": [1, 1, 1, 1], "p2": [1, 0, 1, 0], "p3": [0, 1, 0, 1], "p4": [0, 0, 0, 0]}
    rows = [
        {
            "prompt_id": pid,
            "answer": "7",
            "sample_index": i,
            "content": "7" if ok else "8",
            "reasoning": None,
            "finish_reason": "stop",
            "completion_tokens": 3,
            "ok": ok,
        }
        for pid, oks in passes.items()
        for i, ok in enumerate(oks)
    ]
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "train-00000-of-00001.parquet")

    from distill.verify.config import VerifyConfig

    class Verdicts:  # stands in for the math verifier: the row says whether it passes
        cfg = VerifyConfig()

        def verify(self, rows):
            from types import SimpleNamespace

            return [SimpleNamespace(status="pass" if r["ok"] else "fail", reason=None) for r in rows]

    scored = score_benchmark(tmp_path, BenchmarkConfig(path="x.jsonl"), Verdicts(), [1, 2])
    ci = scored["intervals"]["pass@1"]
    assert scored["num_samples"] == 16 and scored["metrics"]["pass@1"] == pytest.approx(0.5)
    assert ci["mean"] == pytest.approx(0.5) and ci["n"] == 4 and ci["method"] == "normal"
    assert (ci["lo"], ci["hi"]) == (pytest.approx(0.0999248, abs=1e-6), pytest.approx(0.9000752, abs=1e-6))
    json.dumps(scored)  # stored as results.json
