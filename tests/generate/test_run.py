"""Real vLLM on the CPU with the built-in model: n>1 sampling, truncated shards, and the journal:
a SIGKILL mid-shard, then a SIGTERM to the generate process alone, then a run to the end, which
sends only the requests that neither sealed shards nor the journal hold."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from distill.inputs import InputConfig, read_prompts
from distill.schema import sample_id_for
from distill.shards import shard_name
from tests.conftest import DATA, DISTILL
from tests.generate.helpers import journaled, read_ids, sealed_in_manifest, session_processes, shard_files

pytestmark = pytest.mark.slow

N_PROMPTS, N_SAMPLES, SHARD, MAX_TOKENS = 16, 2, 4, 48
SAMPLING = {
    "n": N_SAMPLES,
    "temperature": 0.6,
    "top_p": 0.95,
    "top_k": None,
    "max_tokens": MAX_TOKENS,
    "seed": 0,
}


def write_recipe(path: Path) -> Path:
    path.write_text(
        f"""generate:
  input: {{path: {DATA / "gsm8k_test.jsonl"}, columns: {{problem: question}}, answer_format: gsm8k, limit: {N_PROMPTS}}}
  teacher: {{model: smollm2-135m, max_model_len: 1024, max_in_flight: {SHARD}}}
  sampling: {{num_samples: {N_SAMPLES}, max_tokens: {MAX_TOKENS}}}
  shard_size: {SHARD}
  journal_flush_seconds: 0
"""
    )
    return path


def expected_ids() -> set[str]:
    cfg = InputConfig(
        path=str(DATA / "gsm8k_test.jsonl"),
        columns={"problem": "question"},
        answer_format="gsm8k",
        limit=N_PROMPTS,
    )
    ids = read_prompts(cfg).table.column("id").to_pylist()
    return {sample_id_for(pid, "smollm2-135m", SAMPLING, j) for pid in ids for j in range(N_SAMPLES)}


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory, builtin_model):
    tmp = tmp_path_factory.mktemp("gen")
    out, recipe = tmp / "out", write_recipe(tmp / "r.yaml")
    cmd = [*DISTILL, "generate", str(DATA / "gsm8k_test.jsonl"), "-o", str(out), "--recipe", str(recipe)]
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    with open(tmp / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        deadline = time.monotonic() + 600
        while not sealed_in_manifest(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        # mid-shard: one shard sealed and some of another's requests finished
        while not journaled(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    sealed = sealed_in_manifest(out)
    kept = journaled(out)
    before = {k: v for k, v in shard_files(out).items() if f"data/{k}" in sealed}
    partials = list((out / "data").glob(".*.tmp-*"))
    # the second run: SIGTERM to the generate process alone (as Kubernetes sends it to PID 1)
    with open(tmp / "second.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        deadline = time.monotonic() + 600
        while (  # until the engine has finished a request of this run
            len(sealed_in_manifest(out)) < len(sealed) + 2
            and journaled(out) <= kept
            and proc.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        termed = time.monotonic()
        try:
            proc.wait(timeout=120)
        finally:
            exit_seconds = time.monotonic() - termed
            time.sleep(2)
            survivors = session_processes(proc.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # never leave an engine behind, whatever the test says
    second = {"code": proc.returncode, "seconds": exit_seconds, "survivors": survivors}
    second["log"] = (tmp / "second.log").read_text()
    sealed_2, kept_2 = sealed_in_manifest(out), journaled(out)
    third = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    return {
        "out": out,
        "cmd": cmd,
        "env": env,
        "sealed": sealed,
        "kept": kept,
        "before": before,
        "partials": partials,
        "second": second,
        "sealed_2": sealed_2,
        "kept_2": kept_2,
        "third": third,
    }


def test_killed_run_resumes_exactly_once(resumed_run):
    r = resumed_run
    total = N_PROMPTS // SHARD
    assert 1 <= len(r["sealed"]) < total, "the kill must land after one shard is sealed and before the end"
    assert r["kept"], "the kill must land after some requests of an unsealed shard finished"
    kept = {(k, i) for k, i in r["kept"] if f"data/{shard_name(k, total)}" not in r["sealed"]}
    to_send = N_PROMPTS - SHARD * len(r["sealed"]) - len(kept)
    assert f"resuming: {len(kept)} finished prompts from the journal" in r["second"]["log"]
    assert f"{to_send} requests to send" in r["second"]["log"], r["second"]["log"][-2000:]
    assert r["third"].returncode == 0, r["third"].stderr[-2000:]
    assert f"resuming: {len(r['sealed_2'])} of {total} shards already sealed" in r["third"].stderr
    # only what neither a sealed shard nor the journal held was sent to the engine again
    unsealed_kept = {(k, i) for k, i in r["kept_2"] if f"data/{shard_name(k, total)}" not in r["sealed_2"]}
    expected_sent = N_PROMPTS - SHARD * len(r["sealed_2"]) - len(unsealed_kept)
    assert f"sent {expected_sent} requests to the teacher" in r["third"].stderr, r["third"].stderr[-2000:]
    assert not (r["out"] / "journal").exists(), "the journal of sealed shards is deleted"
    ids = read_ids(r["out"])
    assert len(ids) == len(set(ids)), "duplicate samples after resume"
    assert set(ids) == expected_ids(), "missing or unexpected samples after resume"
    # shards sealed before the kill were not rewritten; at most one shard was caught half-written
    after = shard_files(r["out"])
    assert all(after[name] == stamp for name, stamp in r["before"].items())
    assert len(r["partials"]) <= 1
    manifest = json.loads((r["out"] / "manifest.json").read_text())
    assert manifest["complete"] and manifest["totals"]["rows"] == N_PROMPTS * N_SAMPLES
    assert manifest["command"].startswith("distill generate ")  # the dataset card shows it
    spent = manifest["spent"]  # the runs that recorded their spending: the SIGTERMed one and the last
    assert spent["runs"] >= 2 and spent["completion_tokens"] > 0 and spent["accelerators"] == 0


def test_sigterm_flushes_the_journal_and_stops_every_engine_process(resumed_run):
    second = resumed_run["second"]
    assert second["code"] == 143, second["log"][-2000:]
    print(f"SIGTERM mid-run: stopped in {second['seconds']:.1f} s")
    assert second["seconds"] < 30, f"took {second['seconds']:.1f} s to stop after SIGTERM"
    assert "stopped by SIGTERM" in second["log"] and "run the same command again" in second["log"]
    assert second["survivors"] == [], f"processes outlived the stage: {second['survivors']}"
    # what the second run finished is in the journal or in a newly sealed shard
    assert (
        len(resumed_run["sealed_2"]) > len(resumed_run["sealed"])
        or resumed_run["kept_2"] > resumed_run["kept"]
    )


def test_sigterm_while_the_engine_starts_leaves_no_process(tmp_path, builtin_model):
    out, recipe = tmp_path / "out", write_recipe(tmp_path / "r.yaml")
    cmd = [*DISTILL, "generate", str(DATA / "gsm8k_test.jsonl"), "-o", str(out), "--recipe", str(recipe)]
    log_path = out / "logs" / "generate.log"
    with open(tmp_path / "run.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        # vLLM has started its engine process and is loading the model in it
        while (
            proc.poll() is None
            and time.monotonic() < deadline
            and not any(n.startswith("VLLM") for n in session_processes(proc.pid))
        ):
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before its engine started"
        proc.send_signal(signal.SIGTERM)
        termed = time.monotonic()
        try:
            code = proc.wait(timeout=120)
        finally:
            seconds = time.monotonic() - termed
            time.sleep(2)
            survivors = session_processes(proc.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    text = (tmp_path / "run.log").read_text()
    assert code == 143 and "stopped by SIGTERM" in text, text[-2000:] + (
        log_path.read_text()[-2000:] if log_path.exists() else ""
    )
    print(f"SIGTERM during the engine's start: stopped in {seconds:.1f} s")
    assert seconds < 30, f"took {seconds:.1f} s to stop"
    assert survivors == [], f"processes outlived the stage: {survivors}"
    assert not sealed_in_manifest(out) and read_ids(out) == []


def test_samples_are_real_and_well_formed(resumed_run):
    import datasets

    ds = datasets.load_dataset("parquet", data_dir=str(resumed_run["out"]), split="train")
    assert ds.num_rows == N_PROMPTS * N_SAMPLES
    rows = ds.to_list()
    by_prompt: dict[str, list[int]] = {}
    for row in rows:
        by_prompt.setdefault(row["prompt_id"], []).append(row["sample_index"])
        assert row["teacher"] == "smollm2-135m" and json.loads(row["sampling"]) == SAMPLING
        assert row["prompt"].endswith("put your final answer within \\boxed{}.")
        assert row["finish_reason"] in ("stop", "length")
        assert 0 < row["completion_tokens"] <= MAX_TOKENS and row["prompt_tokens"] > 10
        assert row["completion"].strip()
        if row["content"] is not None:  # closed its reasoning: the split is consistent with the raw text
            assert "</think>" in row["completion"] and row["reasoning"] is not None
        assert row["answer"] and row["domain"] == "math"
    assert all(sorted(v) == list(range(N_SAMPLES)) for v in by_prompt.values())
    # n > 1 really samples: the samples of a prompt are not all identical
    texts = {}
    for row in rows:
        texts.setdefault(row["prompt_id"], set()).add(row["completion"])
    assert any(len(t) > 1 for t in texts.values())


def test_rerun_of_complete_folder_does_nothing(resumed_run):
    before = shard_files(resumed_run["out"])
    again = subprocess.run(
        resumed_run["cmd"], capture_output=True, text=True, env=resumed_run["env"], timeout=300
    )
    assert again.returncode == 0
    assert "0 shards written" in again.stderr
    assert shard_files(resumed_run["out"]) == before


def test_truncated_shard_is_detected_and_regenerated(resumed_run):
    out = resumed_run["out"]
    victim = sorted((out / "data").glob("train-*.parquet"))[1]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    before = shard_files(out)
    again = subprocess.run(
        resumed_run["cmd"], capture_output=True, text=True, env=resumed_run["env"], timeout=900
    )
    assert again.returncode == 0, again.stderr[-2000:]
    total = N_PROMPTS // SHARD
    assert f"resuming: {total - 1} of {total} shards already sealed" in again.stderr
    after = shard_files(out)
    changed = [n for n in after if after[n] != before[n]]
    assert changed == [victim.name]
    ids = read_ids(out)
    assert len(ids) == len(set(ids)) and set(ids) == expected_ids()


def test_data_parallel_workers_write_disjoint_shards_of_one_folder(tmp_path, builtin_model):
    """data_parallel_size=2 (two CPU engines here) = workers 0 and 1 of 2, merged without coordination."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        """generate:
  input: {columns: {problem: question}, answer_format: gsm8k, limit: 6}
  teacher: {model: smollm2-135m, max_model_len: 512, data_parallel_size: 2, gpu_memory_utilization: 0.2}
  sampling: {num_samples: 1, max_tokens: 16}
  shard_size: 2
"""
    )
    out = tmp_path / "out"
    run = subprocess.run(
        [*DISTILL, "generate", str(DATA / "gsm8k_test.jsonl"), "-o", str(out), "--recipe", str(recipe)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    workers = sorted(p.name for p in (out / "manifests").glob("worker-*.json"))
    assert workers == ["worker-00000-of-00002.json", "worker-00001-of-00002.json"]
    owned = [set(json.loads((out / "manifests" / w).read_text())["shards"]) for w in workers]
    assert owned[0] and owned[1] and not owned[0] & owned[1]
    assert len(owned[0] | owned[1]) == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["totals"]["rows"] == 6
