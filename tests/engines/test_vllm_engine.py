"""The vLLM engine on the CPU with the built-in model: closing it stops the processes it started,
and only those (a vLLM server the same process runs, e.g. a notebook's or a test session's, stays)."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from distill.engines.base import Request, SamplingParams
from distill.engines.config import EngineConfig
from distill.engines.vllm_engine import VLLMEngine

pytestmark = pytest.mark.slow


def test_close_stops_its_engine_processes_and_leaves_another_vllm_alone(builtin_model):
    # looks like a vLLM server to a careless reaper: "vllm" in its command line
    other = subprocess.Popen(
        [sys.executable, "-c", "# vllm.entrypoints.openai.api_server\nimport time; time.sleep(600)"]
    )
    engine = VLLMEngine(EngineConfig(model="smollm2-135m", max_model_len=512, max_in_flight=2))
    try:
        results = list(
            engine.stream(
                [Request(0, [{"role": "user", "content": "Say hi."}])],
                SamplingParams(n=1, temperature=0.6, top_p=0.95, max_tokens=4),
            )
        )
        assert len(results) == 1 and results[0].error is None and results[0].samples
        started = {p: psutil.Process(p).name() for p in engine._engine_pids if psutil.pid_exists(p)}
        assert any(n.startswith("VLLM") for n in started.values()), f"no EngineCore among {started}"
        assert other.pid not in started
        engine.close()
        alive = [
            n for p, n in started.items() if n.startswith("VLLM") and psutil.pid_exists(p)
            and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]  # fmt: skip
        assert not alive, f"engine processes outlived close(): {alive}"  # (multiprocessing's resource
        # tracker, also started then, ends with this process)
        assert other.poll() is None, "another vLLM process of this process was stopped"
    finally:
        engine.close()
        other.kill()
        other.wait()
