"""The filter's plan (`make_plan`): survivor choice, dedup reasons, pass rates and the difficulty band,
selection and preference pairs; on keys made by hand, and on real traces with planted near duplicates
through the stage's own path (`plan_of_rows`: features as the first pass computes them)."""

from __future__ import annotations

import numpy as np
import pytest

from distill.filter.config import FilterConfig
from distill.filter.dedup import DedupConfig, exact_digest, minhash_signature
from distill.filter.plan import Keys, make_plan, pass_rates_of
from tests.filter.helpers import dedup_reasons, edit_to, plan_rows, s1k_traces


@pytest.fixture(scope="module")
def traces() -> list[str]:
    return s1k_traces()


def keys_of(*rows: dict) -> Keys:
    """Keys of rows given as {id, prompt, verdict, length, stage (first-pass reject), text}: the
    digest is the text's (else the id's); no signature (no words: never a near duplicate)."""
    n = len(rows)
    return Keys(
        ids=[r["id"] for r in rows],
        prompts=[r["prompt"] for r in rows],
        verdicts=[r.get("verdict") for r in rows],
        stage1=[r.get("stage") for r in rows],
        reasons1=[f"{r['stage']}: first pass" if r.get("stage") else None for r in rows],
        lengths=[r.get("length", 100) for r in rows],
        digests=[exact_digest(r.get("text", r["id"])) for r in rows],
        signatures=np.full((n, 128), 0xFFFFFFFF, np.uint32),
        bounds=[(0, n)],
    )


def config(**sections) -> FilterConfig:
    sections.setdefault("select", {"max_per_prompt": "all"})
    return FilterConfig(**sections)


# --- on keys made by hand --------------------------------------------------------------------------


def test_the_survivor_of_duplicates_passes_then_is_shortest_then_first_by_id():
    k = keys_of(
        {"id": "a", "prompt": "p1", "verdict": "fail", "length": 10, "text": "same"},
        {"id": "c", "prompt": "p2", "verdict": "pass", "length": 50, "text": "same"},
        {"id": "b", "prompt": "p3", "verdict": "pass", "length": 50, "text": "  SAME\n"},  # normalises equal
        {"id": "d", "prompt": "p4", "verdict": "pass", "length": 90, "text": "same"},
        {"id": "e", "prompt": "p5", "verdict": None, "length": 5, "text": "same"},
        # rejected in the first pass: neither a survivor nor a duplicate
        {"id": "0", "prompt": "p6", "verdict": "pass", "length": 1, "text": "same", "stage": "readability"},
    )
    assert sorted(range(6), key=k.preference) == [5, 2, 1, 3, 4, 0]  # 0 b c d e a
    plan = make_plan(k, config())
    assert plan.decisions == {rid: ("dedup", "exact_duplicate: reasoning equals b") for rid in "acde"}
    # scope prompt: only samples of one prompt are compared (here every row has its own)
    assert make_plan(k, config(dedup={"scope": "prompt"})).decisions == {}
    assert make_plan(k, config(dedup={"exact": False})).decisions == {}


def test_pass_rates_count_every_sample_but_input_rejects_and_the_band_keeps_prompts_inside():
    k = keys_of(
        {"id": "a1", "prompt": "p1", "verdict": "pass"},
        {"id": "a2", "prompt": "p1", "verdict": "fail", "stage": "verify"},
        {"id": "a3", "prompt": "p1", "verdict": "pass", "stage": "readability"},  # rejected, still a sample
        {"id": "a4", "prompt": "p1", "verdict": "error"},  # neither pass nor fail
        {"id": "a5", "prompt": "p1", "verdict": "fail", "stage": "input"},  # a repeated id: no sample
        {"id": "b1", "prompt": "p2", "verdict": "pass"},
        {"id": "c1", "prompt": "p3", "verdict": None},
        {"id": "d1", "prompt": "p4", "verdict": "fail", "stage": "verify"},
        {"id": "d2", "prompt": "p4", "verdict": "pass"},
    )
    rates = pass_rates_of(k)
    assert rates == {"p1": pytest.approx(2 / 3), "p2": 1.0, "p3": None, "p4": 0.5}
    plan = make_plan(k, config(select={"max_per_prompt": "all", "difficulty": (0.5, 0.7)}))
    assert plan.pass_rates == rates
    assert plan.decisions == {  # p1 (0.67) and p4 (0.5: the band's ends are inside) stay
        "b1": ("difficulty", "outside_band: pass rate 1.00 not in [0.5, 0.7]"),
        "c1": ("difficulty", "outside_band: pass rate n/a not in [0.5, 0.7]"),
    }
    assert make_plan(k, config()).decisions == {}  # no band: nobody dropped for difficulty


def test_selection_keeps_the_most_preferred_samples_of_each_prompt():
    k = keys_of(
        {"id": "x1", "prompt": "p1", "verdict": "pass", "length": 300},
        {"id": "x2", "prompt": "p1", "verdict": "pass", "length": 100},
        {"id": "x3", "prompt": "p1", "verdict": "fail", "length": 50},
        {"id": "x4", "prompt": "p1", "verdict": "pass", "length": 200},
        {"id": "y1", "prompt": "p2", "verdict": "pass", "length": 10},
    )
    one = make_plan(k, config(select={"max_per_prompt": 1}))
    assert one.decisions == {rid: ("select", "max_per_prompt=1: 1 of 4 kept") for rid in ("x1", "x3", "x4")}
    two = make_plan(k, config(select={"max_per_prompt": 2}))
    assert two.decisions == {rid: ("select", "max_per_prompt=2: 2 of 4 kept") for rid in ("x1", "x3")}

    def kept(seed: int) -> str:
        plan = make_plan(k, config(select={"max_per_prompt": 1, "rule": "random", "seed": seed}))
        return next(rid for rid in ("x1", "x2", "x3", "x4") if rid not in plan.decisions)

    assert kept(3) == kept(3)  # seeded: the same sample for the same seed
    assert len({kept(seed) for seed in range(12)}) > 1  # and not always the shortest


def test_pairs_the_kept_passing_sample_with_the_longest_failing_one():
    k = keys_of(
        {"id": "h", "prompt": "p0", "verdict": "pass", "length": 100},
        {"id": "i", "prompt": "p0", "verdict": "fail", "length": 300, "stage": "verify"},
        {"id": "j", "prompt": "p0", "verdict": "fail", "length": 300, "stage": "verify"},  # tie: by id
        {"id": "a", "prompt": "p1", "verdict": "pass", "length": 100},
        {"id": "b", "prompt": "p1", "verdict": "pass", "length": 200},  # not kept (max_per_prompt=1)
        {"id": "c", "prompt": "p1", "verdict": "fail", "length": 300, "stage": "verify"},
        {"id": "d", "prompt": "p1", "verdict": "fail", "length": 500, "stage": "verify"},
        {"id": "e", "prompt": "p1", "verdict": "fail", "length": 900, "stage": "input"},  # a repeated id
        {"id": "f", "prompt": "p2", "verdict": "pass"},  # no failing sample: no pair
        {"id": "g", "prompt": "p3", "verdict": "fail", "stage": "verify"},  # no passing one: no pair
    )
    plan = make_plan(k, config(select={"max_per_prompt": 1, "preference_pairs": True}))
    assert plan.pairs == [("p0", "h", "j"), ("p1", "a", "d")]
    assert make_plan(k, config(select={"max_per_prompt": 1})).pairs == []


# --- on real traces, through the stage's path --------------------------------------------------------


def test_survivor_is_the_first_in_preference_order(traces):
    copy, _ = edit_to(traces[1], 0.9, 7)
    rows = [
        {"id": "a", "prompt_id": "p1", "reasoning": traces[1], "completion_tokens": 2900},
        {"id": "b", "prompt_id": "p1", "reasoning": copy, "completion_tokens": 2800},
        {"id": "c", "prompt_id": "p2", "reasoning": traces[2], "completion_tokens": 1400},
        {"id": "d", "prompt_id": "p3", "reasoning": traces[1], "completion_tokens": 2800},
    ]
    for shuffled in (rows, rows[::-1], [rows[2], rows[0], rows[3], rows[1]]):
        keys, plan = plan_rows(shuffled, in_order=False)
        ordered = [keys.ids[i] for i in sorted(range(len(keys.ids)), key=keys.preference)]
        assert ordered == ["c", "b", "d", "a"]
        reasons = {rid: plan.decisions.get(rid, (None, None))[1] for rid in keys.ids}
        assert reasons["c"] is None and reasons["b"] is None
        assert reasons["d"].startswith("near_duplicate: reasoning ~ b (jaccard ~0.")
        assert reasons["a"] == "exact_duplicate: reasoning equals d" or reasons["a"].startswith(
            "near_duplicate"
        )


def test_exact_and_near_duplicates(traces):
    rows = [{"id": f"r{i}", "prompt_id": f"p{i}", "reasoning": t} for i, t in enumerate(traces)]
    rows += [
        {"id": "dup", "prompt_id": "p9", "reasoning": traces[3].lower()},
        {"id": "none", "prompt_id": "p9"},
    ]
    reasons = dedup_reasons(rows)
    assert reasons == [None] * 5 + ["exact_duplicate: reasoning equals r3", None]
    assert dedup_reasons(rows, DedupConfig(exact=False))[5].startswith(
        "near_duplicate: reasoning ~ r3 (jaccard ~1.00)"
    )
    assert dedup_reasons(rows, DedupConfig(exact=False, near=False)) == [None] * 7


def test_scope_prompt_only_compares_samples_of_one_prompt(traces):
    rows = [
        {"id": "a", "prompt_id": "p1", "reasoning": traces[0]},
        {"id": "b", "prompt_id": "p2", "reasoning": traces[0]},
        {"id": "c", "prompt_id": "p1", "reasoning": edit_to(traces[0], 0.9, 1)[0]},
    ]
    assert dedup_reasons(rows, DedupConfig(scope="prompt", exact=False))[1:] == [None, dedup_reasons(rows)[2]]
    assert dedup_reasons(rows, DedupConfig(scope="prompt"))[2].startswith("near_duplicate: reasoning ~ a")


def test_duplicate_prompts_lose_all_their_samples(traces):
    problem = (
        "Find the remainder when $9 \\times 99 \\times \\cdots$ is divided by $1000$. Show every step of it."
    )
    rows = [
        {"id": "a", "prompt_id": "p1", "problem": problem, "reasoning": traces[0]},
        {"id": "b", "prompt_id": "p2", "problem": problem + " ", "reasoning": traces[1]},
        {"id": "c", "prompt_id": "p2", "problem": problem + " ", "reasoning": traces[2]},
    ]
    assert dedup_reasons(rows) == [None, None, None]
    assert (
        dedup_reasons(rows, DedupConfig(prompts=True))[1:]
        == ["near_duplicate_prompt: problem of p2 duplicates p1"] * 2
    )


def test_worker_processes_give_the_same_reasons(traces):
    rows = [{"id": f"r{i}", "prompt_id": "p", "reasoning": t} for i, t in enumerate(traces)]
    rows += [
        {"id": f"c{i}", "prompt_id": "q", "reasoning": edit_to(t, 0.85, i)[0]} for i, t in enumerate(traces)
    ]
    assert (
        dedup_reasons(rows, processes=2, chunk=3)
        == dedup_reasons(rows)
        == [None] * 5
        + [
            f"near_duplicate: reasoning ~ r{i} (jaccard ~{(minhash_signature(rows[5 + i]['reasoning']) == minhash_signature(traces[i])).mean():.2f})"
            for i in range(5)
        ]
    )
