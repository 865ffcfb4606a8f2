"""Throughput of the math verifier (`distill.verify.math`) against a plain math-verify loop.

    .venv/bin/python benchmarks/verify_math_throughput.py [--rows 20000] [--reference-rows 1000]

Rows: the five real s1K traces (content = the Gemini attempt with its final line replaced,
reasoning = two Gemini thinking trajectories, 8-30 KB a row) under GSM8K test golds (about 15
samples per prompt, as when sampling k answers per prompt). Answers: right ones in several
spellings (`1,000`, `\\$18`, `18.00`, `\\text{18}`, `\\frac{36}{2}`, bold, `####`), wrong ones
(off by one, doubled, halved as a decimal, a fraction), traces cut off inside the thinking
(answer boxed in the reasoning tail), and no answer at all; a tenth of the prompts get a
MATH-style fraction gold (`\\frac{g}{8}`, answered as a fraction, a decimal or `\\dfrac`).

Measured: `MathVerifier.verify_many` over all rows with 1 and 2 workers (fresh verifier, so an
empty verdict cache; the worker start is timed apart), the same call again (every pair cached:
the parent's own cost), and the reference: a sequential loop of `parse(gold)`, `parse(content)`
(open-r1's settings) and `verify` per row, on a subset. Writes
`benchmarks/results/verify_math_throughput.json` and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from distill.verify.answers import extract_final_answer, number_key
from distill.verify.math import MathVerifier, MathVerifyConfig

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "verify_math_throughput.json"


def _answers(gold_int: int, fraction_gold: bool) -> tuple[list[str], list[str]]:
    """(right, wrong) boxed-answer spellings for a gold."""
    g = gold_int
    if fraction_gold:
        right = [f"\\frac{{{g}}}{{8}}", f"{g / 8:g}", f"\\dfrac{{{g}}}{{8}}"]
        wrong = [f"\\frac{{{g}}}{{9}}", f"{(g + 1) / 8:g}", str(g)]
        return right, wrong
    right = [str(g)] * 6 + [f"{g:,}", f"\\${g}", f"{g}.00", f"\\text{{{g}}}", f"\\frac{{{2 * g}}}{{2}}",
                            f"{g} \\text{{ dollars}}"]  # fmt: skip
    wrong = [str(g + 1), str(g - 1), str(2 * g), f"{g / 2:.1f}", f"\\frac{{{g}}}{{3}}", str(g + 10)]
    return right, wrong


def build_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    traces = pq.read_table(REPO / "data" / "reasoning_traces_s1k_sample.parquet").to_pylist()
    bodies = [t["gemini_attempt"][: t["gemini_attempt"].rfind("Final Answer")] for t in traces]
    thinking = [t["gemini_thinking_trajectory"] for t in traces]
    reasonings = [thinking[i] + "\n\n" + thinking[(i + 1) % len(thinking)] for i in range(len(thinking))]
    golds = []
    for line in (REPO / "data" / "gsm8k_test.jsonl").read_text().splitlines():
        golds.append(json.loads(line)["answer"].split("####")[-1].strip())
    rows = []
    for i in range(n):
        prompt = (i * 7919) % len(golds)  # ~15 samples per prompt, prompts interleaved
        gold = golds[prompt]
        g = int(gold.replace(",", ""))
        fraction_gold = prompt % 10 == 0
        if fraction_gold:
            gold = f"\\frac{{{g}}}{{8}}"
        right, wrong = _answers(g, fraction_gold)
        t = rng.randrange(len(traces))
        body, reasoning = bodies[t], reasonings[t]
        r = rng.random()
        answer = rng.choice(right) if r < 0.62 else rng.choice(wrong)
        kind = rng.random()
        if kind < 0.04:  # no answer at all
            content = body + "\nI could not finish this."
        elif kind < 0.12:  # cut off inside the thinking: content missing
            content, reasoning = (
                None,
                reasoning + f"\nSo the answer should be \\boxed{{{answer}}}. Wait, let me",
            )
        elif kind < 0.15 and not fraction_gold:
            content = body + f"\nAdding it all up, the answer is **{answer}**."
        elif kind < 0.18 and not fraction_gold:
            content = body + f"\n#### {answer}"
        else:
            content = body + f"\n\nFinal Answer: The final answer is $\\boxed{{{answer}}}$"
        rows.append({"answer": gold, "content": content, "reasoning": reasoning})
    return rows


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (from /proc), to compare work apart from the load."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def run_verifier(rows: list[dict], workers: int) -> dict:
    load_before = load()
    start = time.perf_counter()
    verifier = MathVerifier(MathVerifyConfig(workers=workers))
    verifier.verify_many([{"answer": str(i), "content": f"\\boxed{{{i}.5}}"} for i in range(workers)])
    started = time.perf_counter() - start
    try:
        pids, parent_before = verifier.worker_pids(), time.process_time()
        cpu_before = cpu_seconds(pids)
        start = time.perf_counter()
        verdicts = verifier.verify_many(rows)
        elapsed = time.perf_counter() - start
        parent_cpu = time.process_time() - parent_before
        assert verifier.worker_pids() == pids, "a worker was replaced"
        worker_cpu = cpu_seconds(pids) - cpu_before
        start = time.perf_counter()
        verifier.verify_many(rows)
        cached = time.perf_counter() - start
    finally:
        verifier.close()
    return {
        "workers": workers,
        "rows_per_s": round(len(rows) / elapsed, 1),
        "seconds": round(elapsed, 3),
        "worker_start_s": round(started, 3),
        "worker_cpu_s": round(worker_cpu, 2),
        "parent_cpu_s": round(parent_cpu, 2),
        "rows_per_cpu_s": round(len(rows) / (worker_cpu + parent_cpu), 1),
        "all_cached_rows_per_s": round(len(rows) / cached, 1),
        "verdicts": dict(Counter(f"{v.status}: {v.reason}" for v in verdicts)),
        "load_before": load_before,
        "load_after": load(),
        "_verdicts": verdicts,
    }


def run_reference(rows: list[dict]) -> tuple[dict, list[bool | None]]:
    """What a pipeline without this module does: math-verify on every row, in one process."""
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    gold_config = [LatexExtractionConfig(), ExprExtractionConfig()]
    norm = NormalizationConfig(
        nits=False, malformed_operators=False, basic_latex=True, equations=False, boxed="all", units=True
    )
    pred_config = [
        LatexExtractionConfig(
            normalization_config=norm, boxed_match_priority=0, try_extract_without_anchor=False
        )
    ]
    load_before = load()
    out: list[bool | None] = []
    start = time.perf_counter()
    for row in rows:
        gold = parse(row["answer"], extraction_mode="first_match", extraction_config=gold_config)
        if not gold:
            out.append(None)
            continue
        pred = parse(row["content"] or "", extraction_mode="first_match", extraction_config=pred_config)
        out.append(verify(gold, pred))
    elapsed = time.perf_counter() - start
    result = {
        "rows": len(rows),
        "rows_per_s": round(len(rows) / elapsed, 1),
        "seconds": round(elapsed, 3),
        "load_before": load_before,
        "load_after": load(),
    }
    return result, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--reference-rows", type=int, default=1_000)
    args = parser.parse_args()

    rows = build_rows(args.rows)
    start = time.perf_counter()
    extracted = [extract_final_answer(r["content"], r["reasoning"]) for r in rows]
    extract_s = time.perf_counter() - start
    pairs = {(r["answer"], a) for r, a in zip(rows, extracted, strict=True) if a is not None}
    to_workers = {p for p in pairs if number_key(p[0]) is None or number_key(p[0]) != number_key(p[1])}
    sizes = sorted(len(r["content"] or "") + len(r["reasoning"]) for r in rows)

    runs = [run_verifier(rows, w) for w in (1, 2)]
    reference, ref_verdicts = run_reference(rows[: args.reference_rows])
    ours = runs[-1].pop("_verdicts")[: args.reference_rows]
    runs[0].pop("_verdicts")
    agreement = Counter(
        ("same" if (v.status == "pass") == bool(r) else f"ours {v.status}: {v.reason} / math-verify {r}")
        for v, r in zip(ours, ref_verdicts, strict=True)
        if r is not None
    )
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "data": {
            "rows": len(rows),
            "row_kb_median": round(sizes[len(sizes) // 2] / 1024, 1),
            "row_kb_range": [round(sizes[0] / 1024, 1), round(sizes[-1] / 1024, 1)],
            "distinct_golds": len({r["answer"] for r in rows}),
            "distinct_gold_answer_pairs": len(pairs),
            "pairs_sent_to_workers": len(to_workers),
            "parent_extraction_rows_per_s": round(len(rows) / extract_s, 1),
        },
        "verifier": runs,
        "reference_math_verify_loop": reference,
        "speedup_vs_reference": {
            f"workers={r['workers']}": round(r["rows_per_s"] / reference["rows_per_s"], 1) for r in runs
        },
        "agreement_with_reference_on_its_rows": dict(agreement),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
