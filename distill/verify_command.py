"""`distill verify`: ask why a verdict is what it is, or verify a trace file alone.

    distill verify --gold '\\frac{1}{2}' --answer '0.5'
    distill verify --gold '(6,1)' --content 'So the answer is $\\boxed{(6, 1)}$.'
    distill verify --domain code --tests tests.json --program solution.py
    distill verify TRACES -o DIR [--recipe R]

The first forms print the verdict, its reason, what was extracted and what each side parsed to,
through the same code the filter and eval call (`distill.verify`). The last runs the filter's
verify stage and nothing else: every row of TRACES with its `verdict` and `verdict_reason`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def verify_command(
    traces: Annotated[
        str | None, typer.Argument(help="Trace file or `distill generate` folder to verify (with -o).")
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output folder for TRACES.")] = None,
    gold: Annotated[str | None, typer.Option(help="Gold answer, as a data set stores it.")] = None,
    answer: Annotated[
        str | None,
        typer.Option(help="The model's answer; without a \\boxed{} it is read as \\boxed{ANSWER}."),
    ] = None,
    content: Annotated[
        str | None, typer.Option(help="The whole final answer (text after </think>), read as a trace's.")
    ] = None,
    domain: Annotated[str, typer.Option(help="math or code.")] = "math",
    tests: Annotated[Path | None, typer.Option(help="Code tests (JSON file), with --domain code.")] = None,
    program: Annotated[Path | None, typer.Option(help="The program to test, with --domain code.")] = None,
    answer_format: Annotated[
        str | None, typer.Option(help="boxed or lenient [default: the recipe's, else boxed].")
    ] = None,
    recipe: Annotated[
        Path | None, typer.Option(help="Recipe YAML; its filter.verify section is used.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the explanation as JSON.")] = False,
) -> None:
    """Why a verdict: the verdict, its reason, what was extracted and what each side parsed to
    (or, with TRACES -o DIR, the filter's verify stage alone)."""
    from distill.errors import UserError
    from distill.stages import load_stage_config

    overrides = {"verify.math.answer_format": answer_format}
    stage = load_stage_config("filter", recipe, overrides)
    cfg = stage.verify
    if traces is not None:
        if output is None:
            raise UserError("verifying a trace file needs an output folder (-o DIR)")
        _verify_traces(traces, output, stage)
        return
    if domain == "code":
        if tests is None or program is None:
            raise UserError("--domain code needs --tests FILE and --program FILE")
        report = _explain_code(tests, program, cfg)
    elif domain == "math":
        if gold is None or (answer is None) == (content is None):
            raise UserError("give --gold and one of --answer or --content (or TRACES -o DIR)")
        if content is None:
            content = answer if "\\boxed" in answer else f"\\boxed{{{answer}}}"
        from distill.verify.math import explain

        report = explain(gold, content, cfg.math)
    else:
        raise UserError(f"--domain must be math or code, not {domain!r}")
    _print(report, as_json)


def _print(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    colour = {"pass": "green", "fail": "red", "error": "yellow"}[report["status"]]
    console.print(f"[bold {colour}]{report['status']}[/]: {report['reason']}")
    for key, value in report.items():
        if key not in ("status", "reason"):
            console.print(f"  {key}: {value}", markup=False)


def _explain_code(tests: Path, program: Path, cfg) -> dict:
    from distill.errors import UserError
    from distill.verify.code import CodeVerifier, UnreadableTests, parse_tests

    for path in (tests, program):
        if not path.is_file():
            raise UserError(f"file not found: {path}")
    tests_json, code = tests.read_text(), program.read_text()
    content = code if "```" in code else f"```python\n{code}\n```"
    try:
        parsed = parse_tests(tests_json)
        shape = type(parsed).__name__ if not isinstance(parsed, list) else f"{len(parsed)} stdin/stdout cases"
    except UnreadableTests as exc:
        shape = f"unreadable: {exc}"
    verdict = CodeVerifier(cfg.code).verify_many([{"content": content, "tests": tests_json}])[0]
    return {"status": verdict.status, "reason": verdict.reason, "tests": shape, "program": str(program)}


def _verify_traces(traces: str, output: Path, stage) -> None:
    """The filter's verify stage alone: the traces as `distill filter` reads them (the recipe's
    `filter.input` mapping applies), each row with its verdict."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distill.filter.traces import list_trace_files, read_trace_file
    from distill.provenance import atomic_write_text
    from distill.shards import shard_name
    from distill.verify.dispatch import Verifiers

    files = list_trace_files(traces)
    (output / "data").mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    rejects: list[dict] = []
    with Verifiers(stage.verify) as verifiers:
        for k, path in enumerate(files):
            read = read_trace_file(path, stage.input)
            table = read.table
            rejects += read.rejects
            rows = table.to_pylist()
            verdicts = verifiers.verify(rows)
            status = [v.status if v else None for v in verdicts]
            reason = [v.reason if v else None for v in verdicts]
            for s, r in zip(status, reason, strict=True):
                key = f"{s}: {r}" if s else "unverified"
                counts[key] = counts.get(key, 0) + 1
            table = table.append_column("verdict", pa.array(status, pa.string()))
            table = table.append_column("verdict_reason", pa.array(reason, pa.string()))
            target = output / shard_name(k, len(files))
            tmp = target.with_name(f".{target.name}.tmp")
            pq.write_table(table, tmp)
            tmp.replace(target)
            print(f"{path.name}: {len(rows)} rows verified")
    summary = {
        "input": str(traces),
        "rows": sum(counts.values()),
        "verdicts": counts,
        "input_rejects": rejects,
    }
    atomic_write_text(output / "verdicts.json", json.dumps(summary, indent=2) + "\n")
    for key, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"{n:>8}  {key}")
    print(f"wrote {output / 'data'} and {output / 'verdicts.json'}")
