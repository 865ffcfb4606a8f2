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
