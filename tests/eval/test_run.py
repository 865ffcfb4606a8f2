"""distill eval with the built-in model on the CPU: GSM8K (math-verify) and HumanEval (sandbox)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import DATA, DISTILL

RECIPE = f"""eval:
  model: {{model: smollm2-135m, max_model_len: 1024}}
  sampling: {{num_samples: 3, max_tokens: 48}}
  k: [1, 2]
  benchmarks:
    - {{path: {DATA / "gsm8k_test.jsonl"}, name: gsm8k, columns: {{problem: question}}, answer_format: gsm8k, skip: 100, limit: 4}}
    - {{path: {DATA / "humaneval.jsonl.gz"}, name: humaneval, domain: code, limit: 2, tests_format: humaneval,
        columns: {{problem: prompt, id: task_id, tests: test}}}}
"""


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, builtin_model):
    tmp = tmp_path_factory.mktemp("eval")
    recipe = tmp / "r.yaml"
    recipe.write_text(RECIPE)
    cmd = [*DISTILL, "eval", "smollm2-135m", "--recipe", str(recipe), "-o", str(tmp / "out")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    return {"tmp": tmp, "cmd": cmd, "first": first}


@pytest.mark.slow
def test_eval_results_are_complete_and_traceable(evaluated):
    assert evaluated["first"].returncode == 0, evaluated["first"].stderr[-3000:]
    res = json.loads((evaluated["tmp"] / "out" / "results.json").read_text())
    assert res["model"] == "smollm2-135m" and res["git_commit"] and res["versions"]["python"]
    assert res["sampling"]["num_samples"] == 3 and res["sampling"]["temperature"] == 0.6
    gsm, he = res["benchmarks"]["gsm8k"], res["benchmarks"]["humaneval"]
    assert gsm["num_problems"] == 4 and he["num_problems"] == 2
    assert len(gsm["sha256"]) == 64
    for bench in (gsm, he):
        assert set(bench["metrics"]) >= {"pass@1", "pass@2"}
        assert all(0 <= v <= 1 for v in bench["metrics"].values())
        for p in bench["problems"]:
            assert [s["index"] for s in p["samples"]] == [0, 1, 2]
            assert all(s["verdict"] in ("pass", "fail", "error") for s in p["samples"])
            assert p["correct"] == sum(s["verdict"] == "pass" for s in p["samples"])
    assert "cons@3" in gsm["metrics"] and "cons@3" not in he["metrics"]
    # pass@1 is the mean of per-problem correctness
    expect = sum(p["correct"] / 3 for p in gsm["problems"]) / 4
    assert gsm["metrics"]["pass@1"] == pytest.approx(expect)
    assert "gsm8k" in evaluated["first"].stdout and "pass@1" in evaluated["first"].stdout


@pytest.mark.slow
def test_eval_resumes_without_sampling_again(evaluated):
    first = json.loads((evaluated["tmp"] / "out" / "results.json").read_text())
    again = subprocess.run(evaluated["cmd"], capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads((evaluated["tmp"] / "out" / "results.json").read_text())
    for name in ("gsm8k", "humaneval"):
        assert second["benchmarks"][name]["metrics"] == first["benchmarks"][name]["metrics"]
        assert second["benchmarks"][name]["problems"] == first["benchmarks"][name]["problems"]
    # both folders were complete: every shard already sealed, no engine started, nothing sampled
    assert again.stderr.count("resuming: 1 of 1 shards already sealed") == 2
    assert "sealed shard" not in again.stderr and "Loading safetensors" not in again.stderr


def test_compare_prints_both_side_by_side(tmp_path):
    def results(model, p1):
        return {
            "model": model,
            "sampling": {"num_samples": 4, "temperature": 0.6, "top_p": 0.95},
            "benchmarks": {"gsm8k": {"num_problems": 10, "metrics": {"pass@1": p1, "cons@4": 0.5}}},
        }

    for name, model, p1 in (("a", "teacher", 0.8), ("b", "student", 0.25)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(results(model, p1)))
    out = subprocess.run(
        [*DISTILL, "eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if "pass@1" in x)
    assert "0.800" in line and "0.250" in line and "-0.550" in line


def test_compare_with_a_missing_folder_is_a_one_line_error(tmp_path):
    out = subprocess.run(
        [*DISTILL, "eval", "--compare", str(tmp_path / "nope"), str(tmp_path / "nope2")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "cannot read eval results" in out.stderr and "Traceback" not in out.stderr
