"""Adaptive rejection sampling's bookkeeping with the real math verifier: which prompts get another
round, when a prompt is final, what the rows record; and the settings' validation."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from distill.generate.adaptive import Policy, Rounds
from distill.generate.config import SamplingConfig
from distill.verify.config import VerifyConfig

LENIENT = VerifyConfig(math={"answer_format": "lenient"})


def rows(prompt: int, rnd: int, answers: list[str], n: int = 2) -> list[dict]:
    return [
        {
            "id": f"p{prompt}-s{rnd * n + j}",
            "sample_index": rnd * n + j,
            "domain": "math",
            "answer": "12",
            "reasoning": None,
            "content": f"The answer is {a}.",
            "completion": f"The answer is {a}.",
        }
        for j, a in enumerate(answers)
    ]


def wait_for(q, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not q.empty():
            return q.get_nowait()
        time.sleep(0.01)
    raise AssertionError("nothing arrived")


@pytest.fixture
def rounds():
    r = Rounds(Policy(round_size=2, until_pass=2, max_samples=6), LENIENT)
    yield r
    r.close()


def test_a_prompt_short_of_passes_gets_another_round(rounds):
    rounds.opened()
    rounds.submit(0, 7, 0, rows(7, 0, ["12", "13"]))
    assert wait_for(rounds.followups) == (0, 7, 1)  # 1 pass of 2 wanted: round 1 follows
    assert rounds.finals.empty() and rounds.open == 1
    rounds.submit(0, 7, 1, rows(7, 1, ["11", "12"]))
    assert wait_for(rounds.finals) == (0, 7)  # 2 passes: final
    assert rounds.followups.empty() and rounds.open == 0
    assert (rounds.samples[7], rounds.passed[7]) == (4, 2)
    out = rows(7, 0, ["12", "13"]) + rows(7, 1, ["11", "12"])
    rounds.annotate(7, out)
    assert [r["generate_verdict"] for r in out] == ["pass", "fail", "fail", "pass"]
    assert {(r["prompt_samples"], r["prompt_passed"]) for r in out} == {(4, 2)}


def test_a_prompt_never_solved_stops_at_max_samples(rounds):
    rounds.opened()
    for rnd in range(3):
        rounds.submit(1, 3, rnd, rows(3, rnd, ["0", "1"]))
        if rnd < 2:
            assert wait_for(rounds.followups) == (1, 3, rnd + 1)
    assert wait_for(rounds.finals) == (1, 3)
    assert (rounds.samples[3], rounds.passed[3]) == (6, 0)


def test_a_failed_or_rejected_request_is_final_without_verification(rounds):
    rounds.opened(2)
    rounds.submit(0, 1, 0, [])  # rejected for good: no rows
    rounds.submit(0, 2, 0, rows(2, 0, ["1", "2"]), more=False)  # a transient failure
    assert {rounds.finals.get_nowait(), rounds.finals.get_nowait()} == {(0, 1), (0, 2)}
    assert rounds.followups.empty() and rounds.open == 0


def test_fixed_sampling_is_one_round_and_verifies_nothing():
    r = Rounds(Policy(round_size=4))
    r.opened()
    r.submit(2, 9, 0, rows(9, 0, ["0", "0", "0", "0"], n=4))
    assert r.finals.get_nowait() == (2, 9) and r.followups.empty() and r.verdicts == {}
    out = rows(9, 0, ["0"])
    r.annotate(9, out)
    assert "prompt_samples" not in out[0]
    r.close()


def test_settings_are_validated():
    assert SamplingConfig(num_samples=2, until_pass=1, max_samples=8).max_samples == 8
    with pytest.raises(ValidationError, match="needs max_samples"):
        SamplingConfig(num_samples=2, until_pass=1)
    with pytest.raises(ValidationError, match="multiple of num_samples"):
        SamplingConfig(num_samples=4, until_pass=1, max_samples=6)
    with pytest.raises(ValidationError, match="set until_pass too"):
        SamplingConfig(num_samples=4, max_samples=8)
