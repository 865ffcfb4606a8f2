"""The funnel in cost: a priced generate folder with known token counts through the real filter, and
the report's figures checked exactly (per kept row, per reject reason), in report.json and report.md."""

from __future__ import annotations

import json

import pytest

from distill.filter.config import FilterConfig
from distill.filter.run import run_filter
from tests.filter.helpers import quickstart_traces

PROMPTS = 12
# quickstart_traces: per prompt 4 samples of 5, 6, 7, 8 completion tokens; sample 2 is wrong,
# sample 3 repeats sample 0 (a duplicate), and 30 prompt tokens per request.
COMPLETION = PROMPTS * (5 + 6 + 7 + 8)  # 312
SPENT = {
    "requests": PROMPTS,
    "prompt_tokens": PROMPTS * 30,  # 360
    "completion_tokens": COMPLETION,
    "wall_s": 1800.0,
    "cpu_s": 100.0,
    "accelerators": 2,
    "accelerator_hours": 1.0,
}
PRICES = {"input_per_million": 1.0, "output_per_million": 10.0, "accelerator_hour": 2.0, "currency": "USD"}
MONEY = 360 * 1.0 / 1e6 + 312 * 10.0 / 1e6 + 1.0 * 2.0  # 2.00348


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("cost")
    traces = quickstart_traces(root / "generate", prompts=PROMPTS)
    (traces / "spent").mkdir()
    (traces / "spent" / "worker-00000.json").write_text(json.dumps({"runs": [SPENT]}))
    cfg = FilterConfig.model_validate(
        {
            "input": str(traces),
            "output": str(root / "out"),
            "verify": {"math": {"answer_format": "lenient"}},
            "readability": {"think_tags": False, "min_tokens": 4},
            "dedup": {"field": "content", "scope": "prompt"},
            "cost": PRICES,
            "workers": 1,
        }
    )
    run_filter(cfg)
    return json.loads((root / "out" / "report.json").read_text()), (root / "out" / "report.md").read_text()


def test_teacher_spending_and_money_come_from_the_generate_record(report):
    cost = report[0]["cost"]
    t = cost["teacher"]
    assert (t["prompt_tokens"], t["completion_tokens"], t["accelerator_hours"]) == (360, 312, 1.0)
    assert cost["money"] == pytest.approx(MONEY, abs=1e-9) and cost["currency"] == "USD"


def test_per_kept_row(report):
    rep, cost = report[0], report[0]["cost"]
    kept = rep["kept"]
    assert kept == cost["kept_rows"] == PROMPTS  # sample 0 of each prompt (1 is its near-duplicate)
    per = cost["per_kept_row"]
    assert per["completion_tokens"] == round(312 / 12, 6) == 26.0
    assert per["teacher_tokens"] == round((312 + 360) / 12, 6) == 56.0
    assert per["money"] == round(MONEY / 12, 6)


def test_what_each_reject_reason_cost(report):
    cost = report[0]["cost"]
    rejects = cost["rejects"]
    wrong = rejects["verify: fail: wrong answer"]
    assert (wrong["rows"], wrong["completion_tokens"]) == (PROMPTS, PROMPTS * 7)  # sample 2: 7 tokens
    assert wrong["share"] == round(84 / 312, 6)
    assert wrong["money"] == round(MONEY * round(84 / 312, 6), 6)
    exact, near = rejects["dedup: exact_duplicate"], rejects["dedup: near_duplicate"]
    assert (exact["rows"], exact["completion_tokens"]) == (PROMPTS, PROMPTS * 8)  # sample 3: 8 tokens
    assert (near["rows"], near["completion_tokens"]) == (PROMPTS, PROMPTS * 6)  # sample 1: 6 tokens
    assert cost["kept"]["completion_tokens"] == PROMPTS * 5
    assert list(rejects) == ["dedup: exact_duplicate", "verify: fail: wrong answer", "dedup: near_duplicate"]
    # every completion token is accounted for once
    assert (
        cost["kept"]["completion_tokens"] + sum(v["completion_tokens"] for v in rejects.values())
        == COMPLETION
    )


def test_the_markdown_report_shows_the_cost_lines(report):
    md = report[1]
    assert "## Cost" in md
    assert "Teacher (generate's record): 360 prompt + 312 completion tokens, $2.00." in md
    assert f"Per kept SFT row (12 rows): 56.0 teacher tokens, ${round(MONEY / 12, 6):,.4f}." in md
    assert "| verify: fail: wrong answer | 12 | 84 | 26.9% | $0.5394 |" in md
    assert "| kept | 12 | 60 | 19.2% | $0.3853 |" in md


def test_an_input_without_a_record_counts_its_rows_tokens(tmp_path):
    traces = quickstart_traces(tmp_path / "generate", prompts=4)
    cfg = FilterConfig.model_validate(
        {"input": str(traces), "output": str(tmp_path / "out"), "verify": {"math": {"answer_format": "lenient"}},
         "readability": {"think_tags": False, "min_tokens": 4}, "workers": 1}
    )  # fmt: skip
    run_filter(cfg)
    cost = json.loads((tmp_path / "out" / "report.json").read_text())["cost"]
    assert cost["teacher"]["completion_tokens"] == 4 * 26 and cost["teacher"]["prompt_tokens"] is None
    assert cost["money"] is None and cost["per_kept_row"]["money"] is None
    assert "unpriced" in (tmp_path / "out" / "report.md").read_text()
