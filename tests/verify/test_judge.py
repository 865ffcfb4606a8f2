"""The LLM judge: strict parsing, the prompt, rows it never sends, failed requests, real judges.

No mocks: a failed request is a real connection refused; the slow tier runs the built-in model on
the CPU, in-process (vllm backend) and behind a real OpenAI-compatible server (openai backend).
The 135M model's verdicts are weak, so the slow tests check the mechanics, not the grades.
"""

from __future__ import annotations

import json

import pytest

from distill.engines.config import EngineConfig
from distill.verify.judge import JUDGE_PROMPT_VERSION, JudgeConfig, LLMJudge, parse_judgment
from distill.verify.verdict import Verdict

PASS, FAIL = Verdict.passed("judge: CORRECT"), Verdict.failed("judge: INCORRECT")


def unparsable(shown: str) -> Verdict:
    return Verdict.errored(f"judge: unparsable output: {shown!r}")


@pytest.mark.parametrize(
    ("output", "think_opened", "expected"),
    [
        ("CORRECT", False, PASS),
        (" correct.", False, PASS),
        ("Correct!\n", False, PASS),
        ("INCORRECT", False, FAIL),
        ("**INCORRECT**", False, FAIL),
        ("`incorrect`", False, FAIL),
        ("<think>the numbers agree</think>CORRECT", False, PASS),
        ("<think>\nhmm, 18 vs 25\n</think>\n\n**INCORRECT**", False, FAIL),
        ("18 vs 25, no.\n</think>\n\nINCORRECT", True, FAIL),  # the judge's turn was opened with <think>
        ("still thinking about 18 vs", True, unparsable("still thinking about 18 vs")),  # never closed
        ("CORRECT but the units are missing", False, unparsable("CORRECT but the units are missing")),
        ("The answer is correct", False, unparsable("The answer is correct")),
        ("CORRECT INCORRECT", False, unparsable("CORRECT INCORRECT")),
        ("CORRECTLY", False, unparsable("CORRECTLY")),
        ("No", False, unparsable("No")),
        ("", False, unparsable("")),
        ("  \n", False, unparsable("")),
        ("<think>CORRECT</think>", False, unparsable("")),  # a word inside the reasoning doesn't count
        ("x" * 200, False, unparsable("x" * 80)),
    ],
)
def test_parse_is_strict(output, think_opened, expected):
    assert parse_judgment(output, think_opened) == expected


def test_prompt_shows_reference_and_final_answer_not_reasoning():
    row = {
        "problem": "How many legs do 3 spiders have?",
        "answer": "24",
        "reasoning": "SECRET-CHAIN-OF-THOUGHT 3 times 8",
        "content": "They have **24** legs.",
    }
    prompt = LLMJudge().prompt(row)
    assert "How many legs do 3 spiders have?" in prompt
    assert "Reference answer: 24" in prompt
    assert "Candidate answer: They have **24** legs." in prompt
    assert "SECRET" not in prompt and "<think>" not in prompt
    assert "CORRECT or INCORRECT" in prompt


def test_rows_the_judge_is_never_asked_about():
    judge = LLMJudge()  # default vllm backend: were it asked, an engine would start
    rows = [
        {"problem": "p", "answer": "4", "content": None},
        {"problem": "p", "answer": "4", "content": "  \n"},
        {"problem": "p", "answer": None, "content": "4"},
        {"problem": "p", "answer": " ", "content": "4"},
        {"problem": "p", "answer": None, "content": None},  # no final answer wins: it can't be right
    ]
    assert judge.verify_many(rows) == [
        Verdict.failed("no final answer"),
        Verdict.failed("no final answer"),
        Verdict.errored("judge: no reference answer"),
        Verdict.errored("judge: no reference answer"),
        Verdict.failed("no final answer"),
    ]
    assert judge._engine is None  # lazy: nothing was started
    assert judge.verify_many([]) == []
    judge.close()


def test_failed_request_is_an_error_never_a_fail():
    dead = EngineConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="judge", max_retries=0)
    rows = [
        {"problem": "2+2?", "answer": "4", "content": "4"},
        {"problem": "2+2?", "answer": "4", "content": None},
        {"problem": "3+3?", "answer": "6", "content": "7"},
    ]
    with LLMJudge(JudgeConfig(engine=dead)) as judge:
        verdicts = judge.verify_many(rows)
    assert [v.status for v in verdicts] == ["error", "fail", "error"]
    for v in (verdicts[0], verdicts[2]):
        assert v.reason.startswith("judge: gave up after 1 attempts: ConnectError"), v.reason


def test_config():
    cfg = JudgeConfig()
    assert (cfg.engine.backend, cfg.engine.model) == ("vllm", "smollm2-135m")
    assert (cfg.max_tokens, cfg.temperature, cfg.prompt_version) == (8, 0.0, JUDGE_PROMPT_VERSION)
    assert all(f.description for f in JudgeConfig.model_fields.values())
    custom = "Q: {problem}\nGold: {reference}\nGot: {answer}\nCORRECT or INCORRECT?"
    assert (
        LLMJudge(JudgeConfig(template=custom, prompt_version="mine-1")).prompt(
            {"problem": "p", "answer": "a", "content": "b"}
        )
        == "Q: p\nGold: a\nGot: b\nCORRECT or INCORRECT?"
    )
    with pytest.raises(ValueError, match="its own prompt_version"):
        JudgeConfig(template=custom)
    with pytest.raises(ValueError, match=r"no \{reference\} placeholder"):
        JudgeConfig(template="{problem} {answer}", prompt_version="x")
    with pytest.raises(ValueError, match="does not format"):
        JudgeConfig(template="{problem} {reference} {answer} {other}", prompt_version="x")
    with pytest.raises(ValueError):
        JudgeConfig(max_token=8)  # strict: unknown keys are errors


# --- slow tier: real judges ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def gsm8k_rows(gsm8k_path) -> list[dict]:
    """Five real GSM8K problems, each with a right and a wrong final answer, plus two unasked rows."""
    rows = []
    with open(gsm8k_path) as f:
        for line, _ in zip(f, range(5), strict=False):
            item = json.loads(line)
            gold = item["answer"].rsplit("####", 1)[1].strip()
            for given in (gold, str(int(gold) + 7)):
                rows.append(
                    {"problem": item["question"], "answer": gold, "content": f"The answer is {given}."}
                )
    rows.append({"problem": rows[0]["problem"], "answer": rows[0]["answer"], "content": None})
    rows.append({"problem": rows[0]["problem"], "answer": None, "content": "The answer is 18."})
    return rows


def check_mechanics(verdicts: list[Verdict], rows: list[dict]) -> None:
    assert len(verdicts) == len(rows)
    assert verdicts[-2] == Verdict.failed("no final answer")
    assert verdicts[-1] == Verdict.errored("judge: no reference answer")
    judged = verdicts[:-2]
    for v in judged:
        assert v.status in ("pass", "fail", "error") and v.reason
        if v.status == "error":
            assert v.reason.startswith("judge: unparsable output: '") and len(v.reason) > 30, v.reason
        else:
            assert v.reason in ("judge: CORRECT", "judge: INCORRECT")
    print([(v.status, v.reason) for v in judged])
    assert any(v.status != "error" for v in judged), "the judge never answered with a vocabulary word"


@pytest.mark.slow
def test_local_vllm_judge(gsm8k_rows):
    # One engine start; closed at the end of the test, before the server test loads a second model.
    with LLMJudge(JudgeConfig(engine=EngineConfig(max_model_len=1024))) as judge:
        verdicts = judge.verify_many(gsm8k_rows)
        check_mechanics(verdicts, gsm8k_rows)
        # A second judge sharing the engine (no second start): greedy, so the same verdicts;
        # closing it leaves the shared engine to its owner.
        with LLMJudge(judge.config, engine=judge.engine) as shared:
            assert shared.verify_many(gsm8k_rows) == verdicts
        assert judge.verify_many(gsm8k_rows[:2]) == verdicts[:2]
    assert judge._engine is None


@pytest.mark.slow
def test_openai_server_judge(vllm_server, gsm8k_rows):
    cfg = EngineConfig(backend="openai", base_url=vllm_server, model="smollm2-135m", max_retries=1)
    with LLMJudge(JudgeConfig(engine=cfg)) as judge:
        check_mechanics(judge.verify_many(gsm8k_rows), gsm8k_rows)
