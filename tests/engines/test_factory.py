import ast
from pathlib import Path

from distill.engines.config import EngineConfig
from distill.engines.factory import make_engine
from distill.engines.openai_engine import OpenAIEngine

ENGINES = Path(__file__).resolve().parents[2] / "distill" / "engines"


def test_the_factory_builds_the_engine_the_config_names():
    engine = make_engine(EngineConfig(backend="openai", model="m", base_url="http://127.0.0.1:9/v1/"))
    assert isinstance(engine, OpenAIEngine) and engine.teacher == "m" and not engine.think_prefill
    assert engine.url == "http://127.0.0.1:9/v1/chat/completions"
    assert make_engine(EngineConfig(backend="openai", model="m", base_url="http://x"), True).think_prefill


def test_the_interface_imports_no_engine():
    """base.py is what the engines import: it must not import them back (no import circle)."""
    tree = ast.parse((ENGINES / "base.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if m and m.startswith("distill.engines.") and m.endswith("_engine")}
