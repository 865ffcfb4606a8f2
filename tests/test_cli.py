import subprocess
import sys

import pytest

from tests.conftest import DISTILL, FIXTURES

COMMANDS = [
    [],
    ["generate"],
    ["filter"],
    ["train-student"],
    ["manifest"],
    ["card"],
    ["push"],
    ["run"],
    ["mix"],
    ["eval"],
    ["verify"],
    ["data"],
    ["data", "arithmetic"],
    ["models"],
    ["models", "prepare"],
    ["models", "path"],
]


def test_the_help_smoke_test_lists_every_command():
    """COMMANDS (above) is every command and command group the app registers."""
    import typer

    from distill.cli import app

    def walk(group, path: list[str]) -> list[list[str]]:
        found = [path]
        for name, command in group.commands.items():
            found += walk(command, [*path, name]) if hasattr(command, "commands") else [[*path, name]]
        return found

    registered = walk(typer.main.get_command(app), [])
    assert sorted(registered) == sorted(COMMANDS)


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "distill")
def test_help_for_every_command(cmd):
    out = subprocess.run([*DISTILL, *cmd, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout


def test_generate_help_lists_the_contract_flags():
    out = subprocess.run([*DISTILL, "generate", "--help"], capture_output=True, text=True, timeout=60).stdout
    for flag in [
        "--output",
        "--recipe",
        "--model",
        "--backend",
        "--num-samples",
        "--max-tokens",
        "--temperature",
        "--top-p",
        "--shard-size",
        "--num-workers",
        "--worker-index",
    ]:
        assert flag in out, flag


def test_cli_import_pulls_no_heavy_libraries():
    code = "import sys, distill.cli; print(sorted(m for m in ('torch','vllm','transformers','trl','datasets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def run(*args):
    return subprocess.run([*DISTILL, *args], capture_output=True, text=True, timeout=120)


def test_missing_input_is_one_line_error_no_traceback(tmp_path):
    out = run("generate", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o"))
    assert out.returncode == 2
    assert "input not found" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_wrong_format_is_one_line_error(tmp_path):
    f = tmp_path / "x.parquet"
    f.write_text("not parquet")
    out = run("generate", str(f), "-o", str(tmp_path / "o"))
    assert out.returncode == 2 and "not a Parquet file" in out.stderr and "Traceback" not in out.stderr


def test_unknown_recipe_key_is_one_line_error(tmp_path):
    r = tmp_path / "r.yaml"
    r.write_text("generate:\n  sampling:\n    n: 3\n")
    out = run("generate", str(FIXTURES / "bad_input.jsonl"), "-o", str(tmp_path / "o"), "--recipe", str(r))
    assert out.returncode == 2 and "unknown key 'sampling.n'" in out.stderr and "Traceback" not in out.stderr


def test_changed_sampling_into_existing_folder_is_refused(tmp_path):
    recipe = tmp_path / "r.yaml"
    # Nothing listens on port 9: the requests fail at once (no retries), but the folder's identity is recorded.
    recipe.write_text(
        "generate:\n  input: {columns: {problem: question}}\n"
        "  teacher: {backend: openai, base_url: 'http://127.0.0.1:9/v1', model: m, max_retries: 0}\n"
    )
    args = ["generate", str(FIXTURES / "bad_input.jsonl"), "-o", str(tmp_path / "o"), "--recipe", str(recipe)]
    first = run(*args)
    assert first.returncode == 1 and "requests failed" in first.stderr and "Traceback" not in first.stderr
    assert not list((tmp_path / "o" / "data").glob("*.parquet"))  # a failed request is never written
    assert list((tmp_path / "o" / "manifests").glob("worker-*.json"))
    out = run(*args, "--temperature", "0.9")
    assert out.returncode == 2 and "different settings" in out.stderr and "temperature" in out.stderr


def test_ctrl_c_in_a_command_says_how_to_resume(monkeypatch, capsys):
    """Typer turns a KeyboardInterrupt inside a command into exit code 130 without a word; the
    CLI says what to do (every stage resumes)."""
    import typer

    from distill import cli

    app = typer.Typer()

    @app.command()
    def slow() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(sys, "argv", ["distill"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 130
    assert "interrupted: run the same command again to resume" in capsys.readouterr().err
