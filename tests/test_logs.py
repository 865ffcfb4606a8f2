"""Quiet by default, verbose on request, errors always: where a stage's output goes (distill/logs.py).

Each case runs a stage-like function in a child process (the redirection works on the process's
file descriptors 1 and 2, which pytest's own capture must not see), with its stdout and stderr
captured like a terminal's. The function talks the way the libraries do: a `vllm` logger with a
handler on sys.stdout made before the stage starts (as vLLM's is at import), a Python warning, a
bare print, and a child process writing straight to its inherited fd 2 (as vLLM's spawned engine
core does).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

STAGE = textwrap.dedent(
    """
    import logging, subprocess, sys, warnings

    handler = logging.StreamHandler(sys.stdout)  # vLLM's logger, configured at import
    logging.getLogger("vllm").addHandler(handler)
    logging.getLogger("vllm").setLevel(logging.INFO)

    from distill.errors import UserError
    from distill.logs import stage_output
    from distill.progress import stage_progress


    def stage(out, fail=None):
        with stage_output("demo", out), stage_progress() as (progress, log):
            log("OUR-LINE")
            logging.getLogger("vllm").info("VLLM-LOG-LINE")
            warnings.warn("A-FUTURE-WARNING", FutureWarning)
            print("PRINT-STDOUT")
            code = "import os, sys; os.write(2, b'CHILD-FD2\\\\n'); os.write(1, b'CHILD-FD1\\\\n')"
            subprocess.run([sys.executable, "-c", code], check=True)
            if fail == "bug":
                logging.getLogger("vllm").error("ENGINE-CORE-CAUSE")
                raise RuntimeError("BOOM")
            if fail == "user":
                raise UserError("the input is bad")
        print("RESULT-PATH")  # a command's result, after the stage
    """
)
NOISE = ["VLLM-LOG-LINE", "A-FUTURE-WARNING", "PRINT-STDOUT", "CHILD-FD2", "CHILD-FD1"]


def run_stage(tmp_path, env=None, fail=None, via_cli=False):
    out = tmp_path / "out"
    if via_cli:  # through the CLI's entry point: how errors are reported
        call = textwrap.dedent(
            f"""
            import typer
            from distill import cli
            app = typer.Typer()
            app.command()(lambda: stage({str(out)!r}, {fail!r}))
            cli.app = app
            sys.argv = ["distill"]
            cli.main()
            """
        )
    else:
        call = f"stage({str(out)!r}, {fail!r})"
    environ = {k: v for k, v in os.environ.items() if k not in ("DISTILL_LOG", "DISTILL_LOG_FILE")}
    proc = subprocess.run(
        [sys.executable, "-c", STAGE + call],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**environ, **(env or {})},
    )
    return proc, out / "logs" / "demo.log"


def test_quiet_by_default_everything_else_in_the_log_file(tmp_path):
    proc, log = run_stage(tmp_path)
    assert proc.returncode == 0, proc.stderr
    terminal = proc.stdout + proc.stderr
    assert "OUR-LINE" in proc.stderr
    assert proc.stdout.strip() == "RESULT-PATH"  # stdout carries only the result
    for noise in NOISE:
        assert noise not in terminal, noise
    text = log.read_text()
    for noise in NOISE:
        assert noise in text, noise
    assert "OUR-LINE" not in text
    assert text.startswith("===== ")  # a header per run: the file is appended to by every run


def test_verbose_shows_everything_on_the_terminal(tmp_path):
    proc, log = run_stage(tmp_path, env={"DISTILL_LOG": "debug"})
    assert proc.returncode == 0, proc.stderr
    terminal = proc.stdout + proc.stderr
    for noise in [*NOISE, "OUR-LINE", "RESULT-PATH"]:
        assert noise in terminal, noise
    assert not log.exists()


def test_distill_log_file_env_names_the_log(tmp_path):
    """`distill run` puts each stage's log in RUN/logs/<stage>.log this way."""
    target = tmp_path / "run" / "logs" / "generate.log"
    proc, default = run_stage(tmp_path, env={"DISTILL_LOG_FILE": str(target)})
    assert proc.returncode == 0, proc.stderr
    assert "VLLM-LOG-LINE" in target.read_text() and not default.exists()


def test_an_unexpected_error_shows_its_traceback_and_the_log_tail(tmp_path):
    proc, log = run_stage(tmp_path, fail="bug", via_cli=True)
    assert proc.returncode == 1
    assert "RuntimeError: BOOM" in proc.stderr  # the error itself is never hidden
    assert "ENGINE-CORE-CAUSE" in proc.stderr  # the log's last lines: where a library said why
    assert f"full log: {log}" in proc.stderr.strip().splitlines()[-1]
    assert "ENGINE-CORE-CAUSE" in log.read_text()


def test_a_user_error_is_shown_and_points_at_the_log(tmp_path):
    proc, log = run_stage(tmp_path, fail="user", via_cli=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert "error: the input is bad" in proc.stderr and "Traceback" not in proc.stderr
    assert lines[-1] == f"full log: {log}"
    assert "VLLM-LOG-LINE" not in proc.stderr


def test_a_stage_that_logged_nothing_leaves_no_folder_behind(tmp_path):
    """A bad input caught before anything ran: one error line, and no output folder made for a log."""
    code = textwrap.dedent(
        f"""
        import sys, typer
        from distill import cli
        from distill.errors import UserError
        from distill.logs import stage_output
        def bad():
            with stage_output("demo", {str(tmp_path / "a" / "out")!r}):
                raise UserError("input not found: x.jsonl")
        app = typer.Typer()
        app.command()(bad)
        cli.app = app
        sys.argv = ["distill"]
        cli.main()
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: input not found: x.jsonl"
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("value,expected", [("debug", True), ("VERBOSE", True), ("", False), ("info", False)])
def test_distill_log_values(monkeypatch, value, expected):
    from distill.logs import verbose

    monkeypatch.setenv("DISTILL_LOG", value)
    assert verbose() is expected


def test_verbose_option_on_the_app_reaches_the_stages(monkeypatch):
    """`distill --verbose run ...`: set in the environment, so the stages `distill run` starts see it."""
    from distill import cli
    from distill.logs import verbose

    monkeypatch.delenv("DISTILL_LOG", raising=False)
    cli._options(verbose=False)
    assert not verbose()
    cli._options(verbose=True)
    assert os.environ["DISTILL_LOG"] == "debug" and verbose()


def test_every_stage_command_has_verbose():
    from tests.conftest import DISTILL

    for cmd in ([], ["generate"], ["filter"], ["train-student"], ["eval"], ["run"]):
        out = subprocess.run([*DISTILL, *cmd, "--help"], capture_output=True, text=True, timeout=60)
        assert "--verbose" in out.stdout, cmd
