"""The `distill` command line: a thin Typer app over the library.

Each stage's command lives beside the stage (`distill/<stage>/command.py`) and only parses flags,
loads the recipe and calls the stage. Heavy libraries (torch, vLLM, TRL) are imported inside the
commands, so `distill --help` stays instant.

Output: distill's own lines (progress, results, errors) on the terminal; the libraries' logs and
warnings in the stage's log file (see distill/logs.py); `--verbose` or DISTILL_LOG=debug shows
them on the terminal instead.
"""

from __future__ import annotations

import sys

import typer

from distill.errors import UserError

VERBOSE_HELP = (
    "Show the libraries' logs and warnings (vLLM, transformers, torch, ...) on the terminal instead "
    "of the stage's log file (also: DISTILL_LOG=debug)."
)

app = typer.Typer(
    name="distill",
    help="A distillation data factory: teacher traces -> verified SFT set -> student.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

models_app = typer.Typer(help="The built-in model and model folders.", no_args_is_help=True)
app.add_typer(models_app, name="models")
data_app = typer.Typer(help="Small built-in problem sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _register() -> None:
    from distill.data.command import arithmetic_command
    from distill.eval.command import eval_command
    from distill.filter.card_command import card_command
    from distill.filter.command import filter_command
    from distill.filter.mix_command import mix_command
    from distill.generate.command import generate_command
    from distill.models_command import models_path, models_prepare
    from distill.pipeline_command import run_command
    from distill.push_command import push_command
    from distill.shards_command import manifest_command
    from distill.train.command import train_student_command
    from distill.verify_command import verify_command

    app.command("run", no_args_is_help=True)(run_command)
    app.command("generate", no_args_is_help=True)(generate_command)
    app.command("filter", no_args_is_help=True)(filter_command)
    app.command("train-student", no_args_is_help=True)(train_student_command)
    app.command("mix", no_args_is_help=True)(mix_command)
    app.command("eval", no_args_is_help=True)(eval_command)
    app.command("verify", no_args_is_help=True)(verify_command)
    app.command("manifest", no_args_is_help=True)(manifest_command)
    app.command("card", no_args_is_help=True)(card_command)
    app.command("push", no_args_is_help=True)(push_command)
    models_app.command("prepare")(models_prepare)
    models_app.command("path")(models_path)
    data_app.command("arithmetic", no_args_is_help=True)(arithmetic_command)


@app.callback()
def _options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
) -> None:
    """A distillation data factory: teacher traces -> verified SFT set -> student."""
    from distill.logs import set_verbose

    set_verbose(verbose)


_register()


INTERRUPTED = "interrupted: run the same command again to resume where it stopped"
PREEMPTED = (
    "stopped by SIGTERM. What was finished is kept (sealed shards; generate's journal of finished "
    "requests; train's checkpoints): run the same command again to resume, and only unfinished "
    "work is redone"
)


def main() -> None:
    """Entry point: user errors become one red line and exit code 2, never a traceback. SIGTERM
    (`kill`, `docker stop`, Slurm and Kubernetes before they preempt) raises Preempted (see
    distill/signals.py): the stage unwinds through its `finally` blocks (generate flushes its
    journal; engines stop their worker processes), says how to resume and exits with 143."""
    from distill.logs import report_failure
    from distill.signals import EXIT_CODE, Preempted, preemptible

    try:
        with preemptible():
            app()
    except Preempted:
        print(PREEMPTED, file=sys.stderr)
        sys.exit(EXIT_CODE)
    except UserError as exc:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        report_failure(show_tail=False)
        sys.exit(2)
    except KeyboardInterrupt:  # outside a command (Typer handles it inside one: below)
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)
    except SystemExit as exc:
        if exc.code == 130:  # Typer turns Ctrl-C inside a command into exit code 130, silently
            print(INTERRUPTED, file=sys.stderr)
        elif exc.code not in (0, None):
            report_failure(show_tail=False)
        raise
    except Exception:  # a bug or a library's failure: the traceback, then where its cause may be
        import traceback

        traceback.print_exc()
        report_failure(show_tail=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
