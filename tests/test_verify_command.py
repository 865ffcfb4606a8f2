"""`distill verify` through the real CLI: the verdict, its reason and what each side parsed to."""

from __future__ import annotations

import json
import shutil
import subprocess

import pyarrow.parquet as pq
import pytest

from tests.conftest import DISTILL


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*DISTILL, "verify", *args], capture_output=True, text=True, timeout=120)


def test_a_bare_latex_gold_against_a_decimal() -> None:
    out = run("--gold", "\\frac{1}{2}", "--answer", "0.5")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "pass: verified"
    assert "  gold read as: \\boxed{\\frac{1}{2}}" in lines
    assert "  answer text: \\boxed{0.5}" in lines  # an answer given without a box is read as one
    assert "  plain math-verify: pass: verified" in lines
    assert "Timeout is disabled" not in out.stdout + out.stderr


def test_the_policy_shows_in_the_reason() -> None:
    content = "So the answer is 5."
    boxed = json.loads(run("--gold", "5", "--content", content, "--json").stdout)
    lenient = json.loads(
        run("--gold", "5", "--content", content, "--answer-format", "lenient", "--json").stdout
    )
    assert (boxed["status"], boxed["reason"]) == ("fail", "no boxed answer")
    assert (lenient["status"], lenient["reason"]) == ("pass", "verified")
    assert lenient["answer parsed to"] == ["5", "5"]


def test_several_boxes_are_read_together() -> None:
    report = json.loads(
        run(
            "--gold",
            "(2,2),(6,2)",
            "--content",
            "\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}",
            "--json",
        ).stdout
    )
    assert report["status"] == "pass" and report["boxes in the answer"] == 2


def test_missing_arguments_are_one_line_errors() -> None:
    out = run("--gold", "1")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "give --gold and one of --answer or --content" in out.stderr
    out = run("--domain", "code", "--tests", "x.json")
    assert out.returncode == 2 and "--domain code needs --tests FILE and --program FILE" in out.stderr


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_code_through_the_sandbox(tmp_path) -> None:
    tests = tmp_path / "tests.json"
    tests.write_text(json.dumps({"inputs": ["1\n", "41\n"], "outputs": ["2\n", "42\n"]}))
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text("print(int(input()) + 1)\n")
    bad.write_text("print(int(input()) + 2)\n")
    assert run("--domain", "code", "--tests", str(tests), "--program", str(good)).stdout.startswith("pass")
    out = run("--domain", "code", "--tests", str(bad), "--program", str(bad))
    assert out.stdout.startswith("error: unreadable tests"), out.stdout  # a program is no tests file
    assert run("--domain", "code", "--tests", str(tests), "--program", str(bad)).stdout.startswith(
        "fail: wrong answer on case 0"
    )


def test_a_trace_file_alone(tmp_path) -> None:
    traces = tmp_path / "traces.jsonl"
    rows = [
        {"id": "a", "prompt_id": "p1", "problem": "3/4 as a decimal?", "answer": "\\dfrac{3}{4}", "completion": "<think>\nok\n</think>\n\n\\boxed{0.75}",
         "reasoning": "ok", "content": "\\boxed{0.75}", "domain": "math"},
        {"id": "b", "prompt_id": "p1", "problem": "3/4 as a decimal?", "answer": "\\dfrac{3}{4}", "completion": "<think>\nok\n</think>\n\n0.75",
         "reasoning": "ok", "content": "It is 0.75.", "domain": "math"},
        {"id": "c", "prompt_id": "p2", "problem": "Solve it.", "answer": "(6,1)", "completion": "<think>\nok\n</think>\n\n\\boxed{(1,6)}",
         "reasoning": "ok", "content": "\\boxed{(1,6)}", "domain": "math"},
    ]  # fmt: skip
    traces.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run(str(traces), "-o", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    table = pq.read_table(tmp_path / "out" / "data" / "train-00000-of-00001.parquet")
    assert table.column("verdict").to_pylist() == ["pass", "fail", "fail"]
    assert table.column("verdict_reason").to_pylist() == ["verified", "no boxed answer", "wrong answer"]
    summary = json.loads((tmp_path / "out" / "verdicts.json").read_text())
    assert summary["verdicts"] == {"pass: verified": 1, "fail: no boxed answer": 1, "fail: wrong answer": 1}
