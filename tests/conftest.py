"""Shared fixtures. Real components only: the built-in model folder, the bundled data."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
DISTILL = [sys.executable, "-m", "distill.cli"]

# vLLM's CPU backend sizes its KV cache as a share of the NUMA node's memory and refuses to start
# when other programs hold some of it; a fixed 1 GiB is plenty for the tests' small prompts and
# does not depend on what else runs on the machine. Subprocesses inherit it.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


@pytest.fixture(scope="session")
def builtin_model() -> str:
    """The built-in model's folder (prepared by `make setup`; prepared here if missing)."""
    from distill.models import resolve_model

    return resolve_model("smollm2-135m")


@pytest.fixture(scope="session")
def gsm8k_path() -> Path:
    return DATA / "gsm8k_test.jsonl"


@pytest.fixture
def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def has_bwrap() -> bool:
    return shutil.which("bwrap") is not None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def vllm_server(builtin_model, tmp_path_factory):
    """A real OpenAI-compatible vLLM server on the CPU serving the built-in model as 'smollm2-135m'."""
    import signal
    import subprocess
    import time
    import urllib.request

    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        builtin_model,
        "--served-model-name",
        "smollm2-135m",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        "1024",
        "--gpu-memory-utilization",
        "0.35",
        "--enforce-eager",
    ]
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vLLM server exited: {log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(1)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("vLLM server did not become healthy in 300 s")
    yield base + "/v1"
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
