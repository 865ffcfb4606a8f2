"""The openai backend against a real local vLLM OpenAI-compatible server on the CPU."""

from __future__ import annotations

import json
import os
import subprocess

import pyarrow.parquet as pq
import pytest

from distill.engines.base import Request
from distill.engines.config import EngineConfig
from distill.engines.openai_engine import OpenAIEngine
from tests.conftest import DATA, DISTILL

SECRET = "sk-test-do-not-log-0123456789"


@pytest.mark.slow
def test_generate_through_a_real_openai_server(vllm_server, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"""generate:
  input: {{columns: {{problem: question}}, answer_format: gsm8k, limit: 6}}
  teacher: {{backend: openai, base_url: '{vllm_server}', model: smollm2-135m, max_concurrency: 4, api_key_env: DISTILL_TEST_KEY}}
  prompts: {{think_prefill: true}}
  sampling: {{num_samples: 3, max_tokens: 40}}
  shard_size: 4
"""
    )
    out = tmp_path / "out"
    env = {**os.environ, "DISTILL_TEST_KEY": SECRET}
    run = subprocess.run(
        [*DISTILL, "generate", str(DATA / "gsm8k_test.jsonl"), "-o", str(out), "--recipe", str(recipe)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [r for p in sorted((out / "data").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert len(rows) == 6 * 3
    assert sorted({(r["prompt_id"], r["sample_index"]) for r in rows}) == sorted(
        {(r["prompt_id"], j) for r in rows for j in range(3)}
    )
    for r in rows:
        assert r["teacher"] == "smollm2-135m" and r["finish_reason"] in ("stop", "length")
        assert r["prompt_tokens"] > 10 and r["completion"]
        # prefilled through continue_final_message: the text starts inside the reasoning
        assert r["reasoning"] is not None
    # the key never reaches logs, manifests or data
    assert SECRET not in run.stdout + run.stderr
    for f in out.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
    assert json.loads((out / "manifest.json").read_text())["totals"]["rows"] == 18


def test_reasoning_fields_of_the_response_are_understood():
    eng = OpenAIEngine(EngineConfig(backend="openai", base_url="http://x/v1", model="m"))
    data = {
        "choices": [
            {"index": 1, "message": {"content": "B", "reasoning": "thought b"}, "finish_reason": "stop"},
            {
                "index": 0,
                "message": {"content": "\\boxed{5}", "reasoning_content": "2+3"},
                "finish_reason": "length",
            },
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 30},
    }
    res = eng._parse(Request("k", []), data, n=2)
    assert [s.text for s in res.samples] == [
        "<think>\n2+3\n</think>\n\n\\boxed{5}",
        "<think>\nthought b\n</think>\n\nB",
    ]
    assert [s.finish_reason for s in res.samples] == ["length", "stop"]
    assert (
        res.prompt_tokens == 12 and res.samples[0].completion_tokens is None
    )  # unknown per choice when n > 1


def test_missing_base_url_is_a_user_error():
    from distill.errors import UserError

    with pytest.raises(UserError, match="base URL"):
        OpenAIEngine(EngineConfig(backend="openai", model="m"))


class _FlakyAPI:
    """A stand-in for a remote API's transient failures (which cannot be provoked on a real server)."""

    def __init__(self, statuses):
        import http.server
        import threading

        self.statuses = list(statuses)
        self.calls = 0
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.calls += 1
                api.last_auth = self.headers.get("Authorization")
                status = api.statuses.pop(0) if api.statuses else 200
                payload = (
                    {"error": "busy"}
                    if status != 200
                    else {
                        "choices": [
                            {
                                "index": i,
                                "message": {"content": f"<think>r{i}</think>A{i}"},
                                "finish_reason": "stop",
                            }
                            for i in range(body["n"])
                        ],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 7},
                    }
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()


def _engine(url, retries, monkeypatch):
    monkeypatch.setenv("DISTILL_TEST_KEY", SECRET)
    cfg = EngineConfig(
        backend="openai",
        base_url=url,
        model="m",
        max_retries=retries,
        retry_backoff_s=0.01,
        api_key_env="DISTILL_TEST_KEY",
    )
    return OpenAIEngine(cfg)


def test_transient_errors_are_retried_with_backoff(monkeypatch):
    from distill.engines.base import SamplingParams

    api = _FlakyAPI([503, 429, 500])
    try:
        eng = _engine(api.url, retries=3, monkeypatch=monkeypatch)
        [res] = list(
            eng.stream([Request("k", [{"role": "user", "content": "hi"}])], SamplingParams(2, 0.6, 0.95, 16))
        )
    finally:
        api.close()
    assert res.error is None and api.calls == 4
    assert [s.text for s in res.samples] == ["<think>r0</think>A0", "<think>r1</think>A1"]
    assert api.last_auth == f"Bearer {SECRET}"


def test_client_errors_are_not_retried_and_never_become_samples(monkeypatch):
    from distill.engines.base import SamplingParams

    api = _FlakyAPI([400])
    try:
        eng = _engine(api.url, retries=5, monkeypatch=monkeypatch)
        [res] = list(
            eng.stream([Request("k", [{"role": "user", "content": "hi"}])], SamplingParams(1, 0.6, 0.95, 16))
        )
    finally:
        api.close()
    assert api.calls == 1 and res.samples == [] and res.error.startswith("HTTP 400")
    assert SECRET not in res.error


def test_gives_up_after_max_retries(monkeypatch):
    from distill.engines.base import SamplingParams

    api = _FlakyAPI([503] * 10)
    try:
        eng = _engine(api.url, retries=2, monkeypatch=monkeypatch)
        [res] = list(
            eng.stream([Request("k", [{"role": "user", "content": "hi"}])], SamplingParams(1, 0.6, 0.95, 16))
        )
    finally:
        api.close()
    assert api.calls == 3 and res.samples == [] and "gave up after 3 attempts" in res.error
