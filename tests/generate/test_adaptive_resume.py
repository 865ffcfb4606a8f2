"""Adaptive rejection sampling for real (vLLM on the CPU, the built-in model, math-verify): a run
killed between rounds resumes where it stopped, and the final set is exact: every prompt's samples
are whole rounds with contiguous indices, it stopped at its first round with a verified sample or
at max_samples, journaled samples are kept (not sampled again), and the rerun sent exactly the
rounds that were missing."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import time

import pyarrow as pa
import pytest

from tests.conftest import DISTILL, REPO
from tests.generate.helpers import read_ids

pytestmark = pytest.mark.slow

N_PROMPTS, ROUND, MAX_SAMPLES = 12, 2, 8


def journal_rows(out) -> dict[str, dict]:
    """Every sample in the journal, by id (read with pyarrow alone)."""
    got = {}
    for seg in (out / "journal").glob("shard-*/seg-*.arrow"):
        with contextlib.suppress(OSError, pa.ArrowInvalid):
            for r in pa.ipc.open_file(pa.memory_map(str(seg))).read_all().to_pylist():
                got[r["id"]] = r
    return got


def test_adaptive_run_killed_between_rounds_resumes_exactly(tmp_path, builtin_model):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"""generate:
  input: {{path: {REPO / "data/arithmetic/train.jsonl"}, domain: math, limit: {N_PROMPTS}}}
  teacher: {{model: smollm2-135m, max_model_len: 1024, max_in_flight: 4}}
  sampling: {{num_samples: {ROUND}, max_tokens: 64, until_pass: 1, max_samples: {MAX_SAMPLES}}}
  prompts: {{think_prefill: false, templates: {{math: "{{problem}}\\nAnswer with the number only."}}}}
  verify: {{math: {{answer_format: lenient}}}}
  shard_size: {N_PROMPTS}
  journal_flush_seconds: 0
"""
    )
    out = tmp_path / "out"
    cmd = [
        *DISTILL,
        "generate",
        str(REPO / "data/arithmetic/train.jsonl"),
        "-o",
        str(out),
        "--recipe",
        str(recipe),
    ]
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 600
        # killed once some prompt's second round is in the journal
        while proc.poll() is None and time.monotonic() < deadline:
            if any(r["sample_index"] >= ROUND for r in journal_rows(out).values()):
                break
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = journal_rows(out)
    assert any(r["sample_index"] >= ROUND for r in before.values()), (tmp_path / "first.log").read_text()[
        -2000:
    ]
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]

    import pyarrow.parquet as pq

    rows = [r for p in sorted((out / "data").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    ids = read_ids(out)
    assert len(ids) == len(set(ids)) == len(rows)
    by_prompt = collections.defaultdict(list)
    for r in rows:
        by_prompt[r["prompt_id"]].append(r)
    assert len(by_prompt) == N_PROMPTS
    for pid, rs in by_prompt.items():
        m = len(rs)
        indices = sorted(r["sample_index"] for r in rs)
        assert indices == list(range(m)) and m % ROUND == 0 and ROUND <= m <= MAX_SAMPLES, (pid, indices)
        verdicts = {r["sample_index"]: r["generate_verdict"] for r in rs}
        passes = sum(v == "pass" for v in verdicts.values())
        assert all(r["prompt_samples"] == m and r["prompt_passed"] == passes for r in rs)
        # stopped at its first round with a verified sample, or at max_samples
        assert not any(verdicts[j] == "pass" for j in range(m - ROUND)), (pid, verdicts)
        assert passes >= 1 or m == MAX_SAMPLES
    # the journal's samples were kept as they were, not sampled again
    final = {r["id"]: r for r in rows}
    assert all(final[i]["completion"] == r["completion"] for i, r in before.items())
    # prompts that were short of a pass at the kill continued with their next round
    journaled = collections.defaultdict(list)
    for r in before.values():
        journaled[r["prompt_id"]].append(r)
    continued = [pid for pid, rs in journaled.items() if len(by_prompt[pid]) > len(rs)]
    open_at_kill = [
        pid
        for pid, rs in journaled.items()
        if len(rs) < MAX_SAMPLES and not any(final[r["id"]]["generate_verdict"] == "pass" for r in rs)
    ]
    assert set(open_at_kill) <= set(continued)
    # the rerun sent exactly the rounds the journal lacked
    rounds_total = sum(len(rs) // ROUND for rs in by_prompt.values())
    rounds_kept = sum(len(rs) // ROUND for rs in journaled.values())
    assert f"sent {rounds_total - rounds_kept} requests to the teacher" in second.stderr, second.stderr[
        -2000:
    ]
    assert f"resuming: {len(journaled)} finished prompts from the journal" in second.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    adaptive = manifest["totals"]["adaptive"]
    assert adaptive["samples"] == len(rows)
    assert adaptive["prompts_solved"] + adaptive["prompts_unsolved"] == N_PROMPTS
    assert adaptive["passed"] == sum(r["generate_verdict"] == "pass" for r in rows)
