"""The journal through the openai backend against a real local vLLM server: SIGKILL the client
mid-shard, rerun, and count from the server's own metrics that only unfinished requests came again."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from distill.inputs import InputConfig, read_prompts
from distill.schema import sample_id_for
from distill.shards import shard_name
from tests.conftest import DATA, DISTILL
from tests.generate.helpers import journaled, read_ids, sealed_in_manifest

pytestmark = pytest.mark.slow

N_PROMPTS, N_SAMPLES, SHARD, MAX_TOKENS = 12, 2, 6, 64


def served_requests(base_url: str) -> float:
    """Requests the server has finished (vllm:request_success_total over every finish reason)."""
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:request_success_total{")
    )


def test_killed_openai_client_resends_only_unfinished_requests(vllm_server, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"""generate:
  input: {{columns: {{problem: question}}, answer_format: gsm8k, limit: {N_PROMPTS}}}
  teacher: {{backend: openai, base_url: '{vllm_server}', model: smollm2-135m, max_concurrency: 2}}
  sampling: {{num_samples: {N_SAMPLES}, max_tokens: {MAX_TOKENS}}}
  shard_size: {SHARD}
  journal_flush_seconds: 0
"""
    )
    out = tmp_path / "out"
    cmd = [*DISTILL, "generate", str(DATA / "gsm8k_test.jsonl"), "-o", str(out), "--recipe", str(recipe)]
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        while len(journaled(out)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    total = -(-N_PROMPTS // SHARD)
    sealed = sealed_in_manifest(out)
    kept = {(k, i) for k, i in journaled(out) if f"data/{shard_name(k, total)}" not in sealed}
    assert kept, "the kill must land after some requests of an unsealed shard finished"
    time.sleep(1)  # requests the killed client left in flight finish (or abort) on the server
    before = served_requests(vllm_server)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    expected = N_PROMPTS - SHARD * len(sealed) - len(kept)
    assert f"sent {expected} requests to the teacher" in second.stderr, second.stderr[-2000:]
    # the server's count agrees (vLLM counts each of a request's n samples as a request of its own)
    assert served_requests(vllm_server) - before == expected * N_SAMPLES
    ids = read_ids(out)
    cfg = InputConfig(
        path=str(DATA / "gsm8k_test.jsonl"),
        columns={"problem": "question"},
        answer_format="gsm8k",
        limit=N_PROMPTS,
    )
    sampling = {
        "n": N_SAMPLES, "temperature": 0.6, "top_p": 0.95, "top_k": None, "max_tokens": MAX_TOKENS, "seed": 0,
    }  # fmt: skip
    want = {
        sample_id_for(pid, "smollm2-135m", sampling, j)
        for pid in read_prompts(cfg).table.column("id").to_pylist()
        for j in range(N_SAMPLES)
    }
    assert len(ids) == len(set(ids)) and set(ids) == want
    assert not Path(out / "journal").exists()
