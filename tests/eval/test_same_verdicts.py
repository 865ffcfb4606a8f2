"""`distill eval` and `distill filter` give the same verdict for the same (gold, answer): both call
`distill.verify` (one dispatch, one math verifier); checked on the same trace rows through each."""

from __future__ import annotations

import pyarrow.parquet as pq

from distill.eval.config import BenchmarkConfig
from distill.eval.run import score_benchmark
from distill.filter.config import FilterConfig
from distill.filter.run import run_filter
from distill.schema import TRACE_SCHEMA, to_table
from distill.verify.config import VerifyConfig
from distill.verify.dispatch import Verifiers

CASES = [  # (gold as data sets store it, final answer)
    ("\\dfrac{207}{64}", "So the answer is $\\boxed{\\frac{207}{64}}$."),
    ("\\dfrac{207}{64}", "So the answer is $\\boxed{3.2}$."),
    ("(6,1)", "\\boxed{(6, 1)}"),
    ("(2,2),(6,2)", "\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}"),
    ("45", "Hence \\boxed{k = 45}."),
    ("18", "The answer is 18."),  # no box: fail under the default policy, in both
    ("}{", "\\boxed{1}"),  # unparsable gold: error, in both
    ("1,000", "\\boxed{1000}"),
]


def test_eval_and_filter_agree(tmp_path) -> None:
    rows = []
    for i, (gold, content) in enumerate(CASES):
        completion = f"<think>\nworking\n</think>\n\n{content}"
        rows.append({"id": f"s{i}", "prompt_id": f"p{i}", "sample_index": 0, "problem": f"problem {i}",
                     "answer": gold, "domain": "math", "prompt": f"problem {i}", "reasoning": "working",
                     "content": content, "completion": completion, "finish_reason": "stop",
                     "teacher": "t", "sampling": "{}"})  # fmt: skip
    (tmp_path / "traces" / "data").mkdir(parents=True)
    pq.write_table(
        to_table(rows, TRACE_SCHEMA), tmp_path / "traces" / "data" / "train-00000-of-00001.parquet"
    )

    with Verifiers(VerifyConfig()) as verifiers:
        scored = score_benchmark(tmp_path / "traces", BenchmarkConfig(path="unused.jsonl"), verifiers, [1])
    by_eval = {p["id"]: (p["samples"][0]["verdict"], p["samples"][0]["reason"]) for p in scored["problems"]}

    cfg = FilterConfig(input=str(tmp_path / "traces"), output=str(tmp_path / "out"), workers=1)
    cfg.select.max_per_prompt = "all"
    run_filter(cfg, log=lambda m: None)
    out = [r for d in ("sft", "rejects") for p in (tmp_path / "out" / d / "data").glob("*.parquet")
           for r in pq.read_table(p).to_pylist()]  # fmt: skip
    by_filter = {r["prompt_id"]: (r["verdict"], r["verdict_reason"]) for r in out}

    assert by_eval == by_filter
    assert [by_eval[f"p{i}"][0] for i in range(len(CASES))] == [
        "pass", "fail", "pass", "pass", "pass", "fail", "error", "pass"
    ]  # fmt: skip
    assert by_eval["p5"] == ("fail", "no boxed answer")


def test_majority_vote_reads_answers_as_the_policy_does() -> None:
    """cons@k counts the answers the verifier reads: under the lenient policy an unboxed reply's
    last number, under the boxed one only boxed (or explicitly marked) answers."""
    from distill.verify.answers import vote_answer

    assert vote_answer("Anna buys 11 * 3 = 33 cards.", None, "lenient") == "33"
    assert vote_answer("Anna buys 11 * 3 = 33 cards.", None, "boxed") is None
    assert vote_answer("It costs 1,000 dollars, so", None, "lenient") == "1000"
    assert vote_answer("So \\boxed{\\frac{1}{2}} and 7", None, "lenient") == "\\frac{1}{2}"
    assert vote_answer("no numbers here", None, "lenient") is None
