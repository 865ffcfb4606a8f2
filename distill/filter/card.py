"""Dataset cards: the `README.md` the Hugging Face hub reads, written beside the shards of the
filter's `sft/` and `pairs/` and of a `distill mix` output, so a set describes itself.

The YAML header (`huggingface_hub.DatasetCardData`): license (`card.license` of the recipe
section; unset: `unknown`, with a warning), `configs` with `data_files: data/train-*.parquet`
(exactly the sealed shards: temporary files start with a dot), size category, task category,
tags. `datasets.load_dataset(folder)` reads the folder through that header.

The body is drawn from what the stages recorded, nothing else: the generate manifest (teacher and
its revision, sampling, prompt templates, input, versions), the filter's manifest and report
(verifiers and their policies, the funnel, the reject reasons, decontamination per benchmark file,
lengths, `cost` when the report has one), the shards' own columns (teachers, prompt sources, token
counts), and the command lines that made it (the filter records its own in `sft/manifest.json`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field

from distill.config import StrictModel
from distill.errors import UserError
from distill.provenance import atomic_write_text, git_commit, package_versions, utc_now

CARD = "README.md"
DATA_GLOB = "data/train-*.parquet"  # the shards (shards.shard_name), never their temporary files
TAGS = ["distillation", "reasoning", "synthetic", "distill"]
NO_LICENSE = "unknown"  # the hub's own value for a license not given


class CardConfig(StrictModel):
    """The dataset card written beside the shards (`README.md`, read by the hub and `datasets`)."""

    license: str | None = Field(
        None,
        description="The set's license as the hub names it (e.g. apache-2.0, mit, cc-by-4.0, other): "
        "mind the teacher's terms and the prompts' licenses. Unset: `unknown`, with a warning.",
    )
    pretty_name: str | None = Field(
        None, description="The card's title (default: the last three parts of the folder's path)."
    )


def size_category(rows: int) -> str:
    """The hub's `size_categories` bucket of a row count."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]
    bounds += [(10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    for bound, name in bounds:
        if rows < bound:
            return name
    return "n>1B"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _shards(folder: Path) -> list[Path]:
    return sorted(folder.glob(DATA_GLOB))


def _column_counts(files: list[Path], name: str) -> Counter:
    """A column's values and their row counts over `files` (one column read at a time)."""
    counts: Counter = Counter()
    for f in files:
        if name in pq.ParquetFile(f).schema_arrow.names:
            column = pq.read_table(f, columns=[name])[name]
            for item in pc.value_counts(column).to_pylist():
                counts[item["values"] if item["values"] is not None else "(none)"] += item["counts"]
    return counts


def _column_sum(files: list[Path], name: str) -> int | None:
    total, seen = 0, False
    for f in files:
        if name in pq.ParquetFile(f).schema_arrow.names:
            seen = True
            total += pc.sum(pq.read_table(f, columns=[name])[name]).as_py() or 0
    return total if seen else None


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "`" + text.replace("`", "'").replace("\n", "\\n") + "`"


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return [*out, ""]


# --- the body's sections -------------------------------------------------------------------------


def _generation(gen: dict[str, Any], files: list[Path]) -> list[str]:
    """Teacher, sampling, prompts: from the generate manifest, and the rows' own columns."""
    ident, info = gen.get("identity") or {}, gen.get("info") or {}
    config = info.get("config") or {}
    lines = ["## Teacher and sampling", ""]
    teachers = _column_counts(files, "teacher")
    if ident:
        engine = config.get("teacher") or {}
        lines.append(
            f"- teacher: {_code(ident.get('teacher'))}, revision {_code(ident.get('teacher_revision'))}"
            + (f" (backend {_code(engine.get('backend'))})" if engine.get("backend") else "")
        )
    if teachers:
        lines.append(
            "- teacher of the rows: " + ", ".join(f"{_code(t)} ({n} rows)" for t, n in teachers.most_common())
        )
    sampling = ident.get("sampling") or config.get("sampling")
    if sampling:
        lines.append("- sampling: " + ", ".join(f"{k} {_code(v)}" for k, v in sampling.items()))
    prompts = ident.get("prompts") or {}
    if prompts:
        lines.append(
            f"- system prompt: {_code(prompts.get('system_prompt'))}; `<think>` prefilled: "
            f"{_code(prompts.get('think_prefill'))}"
        )
        for domain, template in (prompts.get("templates") or {}).items():
            lines.append(f"- user-turn template ({domain}): {_code(template)}")
    if not ident:
        lines.append(
            "- the traces were not made by `distill generate` (no generate manifest): the teacher "
            "and sampling are what the rows' own columns say"
        )
    lines.append("")
    lines += ["## Prompt sources", ""]
    source_input = config.get("input") or {}
    if source_input:
        lines.append(
            f"- prompts read from {_code(source_input.get('path'))} (split {_code(source_input.get('split'))}, "
            f"answer format {_code(source_input.get('answer_format'))}); "
            f"{gen.get('rows_read', '?')} prompts read, {gen.get('rejected_rows', 0)} rejected"
        )
    sources = _column_counts(files, "source")
    if sources:
        lines += [
            "",
            *_table(["source", "rows in this set"], [[_code(s), n] for s, n in sources.most_common()]),
        ]
    else:
        lines.append("")
    return lines


def _verification(config: dict[str, Any], report: dict[str, Any]) -> list[str]:
    verify = config.get("verify") or {}
    lines = ["## Verification and filters", ""]
    if verify:
        domains = verify.get("domains") or {}
        lines.append("- verifier per domain: " + ", ".join(f"{d} → {_code(v)}" for d, v in domains.items()))
        lines.append(
            f"- on a verifier error: {_code(verify.get('on_error'))} (retries {verify.get('error_retries')})"
        )
        math = verify.get("math") or {}
        if math:
            lines.append(
                f"- math (math-verify): answer format {_code(math.get('answer_format'))}, "
                f"timeout {math.get('timeout_s')} s"
            )
        code = verify.get("code") or {}
        if code:
            lines.append(
                f"- code (sandboxed tests): timeout {code.get('timeout_s')} s, memory {code.get('memory_mb')} MB"
            )
        judge = verify.get("judge") or {}
        if judge and "judge" in domains.values():
            lines.append(
                f"- judge: {_code((judge.get('engine') or {}).get('model'))}, prompt "
                f"{_code(judge.get('prompt_version'))}"
            )
    readability = config.get("readability") or {}
    if readability:
        on = [k for k, v in readability.items() if v is True]
        lines.append(
            "- readability filters: "
            + (", ".join(on) or "none")
            + f" (tokens {readability.get('min_tokens')}–{readability.get('max_tokens')})"
        )
    dedup = config.get("dedup") or {}
    if dedup:
        lines.append(
            f"- dedup: exact {dedup.get('exact')}, near {dedup.get('near')} (MinHash, Jaccard ≥ "
            f"{dedup.get('threshold')} on {_code(dedup.get('field'))}, scope {_code(dedup.get('scope'))})"
        )
    select = config.get("select") or {}
    if select:
        lines.append(
            f"- selection: {select.get('max_per_prompt')} per prompt ({select.get('rule')}), difficulty "
            f"band {_code(select.get('difficulty'))}"
        )
    verdicts = report.get("verdicts") or {}
    if verdicts:
        lines.append("- verdicts: " + ", ".join(f"{k} {v}" for k, v in verdicts.items()))
    pr = report.get("pass_rate") or {}
    if pr.get("mean") is not None:
        lines.append(
            f"- pass rate per prompt: mean {pr['mean']:.3f} over {pr.get('prompts_with_verdicts')} prompts; "
            f"{pr.get('all_pass')} all passed, {pr.get('none_pass')} none passed"
        )
    return [*lines, ""]


def _funnel(report: dict[str, Any]) -> list[str]:
    if not report.get("funnel"):
        return []
    lines = ["## Funnel", "", f"{report.get('kept')} of {report.get('rows')} trace rows kept.", ""]
    lines += _table(
        ["stage", "dropped", "rows left"], [[f["stage"], f["dropped"], f["rows"]] for f in report["funnel"]]
    )
    reasons = report.get("reasons") or {}
    lines += ["### Reject reasons", ""]
    lines += _table(["stage: reason", "rows"], [[k, v] for k, v in reasons.items()] or [["(none)", 0]])
    return lines


def _decontamination(config: dict[str, Any], report: dict[str, Any]) -> list[str]:
    decontam = config.get("decontaminate") or {}
    if not decontam:
        return []
    lines = ["## Decontamination", ""]
    benchmarks = decontam.get("benchmarks") or []
    if not decontam.get("enabled") or not benchmarks:
        return [*lines, "No benchmark files were given: the set was not decontaminated.", ""]
    per_file: Counter = Counter()
    for reason, n in (report.get("reasons") or {}).items():
        if reason.startswith("decontaminate:") and "(" in reason:
            per_file[reason.rsplit("(", 1)[1].rstrip(")")] += n
    lines.append(
        f"Rows whose problem shares a word {decontam.get('ngram')}-gram with a benchmark question "
        "were dropped (the first benchmark file that matches counts them)."
    )
    lines.append("")
    rows = [[_code(b), per_file.pop(Path(b).name, 0) + per_file.pop(b, 0)] for b in benchmarks]
    rows += [
        [_code(name), n] for name, n in per_file.items()
    ]  # a name not in the list (e.g. a folder's file)
    return lines + _table(["benchmark file", "rows dropped"], rows)


def _tokens(report: dict[str, Any], files: list[Path], gen: dict[str, Any]) -> list[str]:
    lines = ["## Tokens", ""]
    completion, prompt = _column_sum(files, "completion_tokens"), _column_sum(files, "prompt_tokens")
    if completion is not None:
        lines.append(
            f"- completion tokens in this set: {completion}"
            + (f"; prompt tokens: {prompt}" if prompt is not None else "")
        )
    spent = (gen.get("totals") or {}).get("completion_tokens")
    if spent is not None:
        lines.append(f"- teacher completion tokens generated (all samples, kept or not): {spent}")
    lengths = report.get("lengths") or {}
    if lengths:
        lines += [
            "",
            *_table(
                ["completion tokens", "rows", "p50", "p90", "max"],
                [
                    [name, q.get("count"), q.get("p50"), q.get("p90"), q.get("max")]
                    for name, q in lengths.items()
                ],
            ),
        ]
    return lines if len(lines) > 2 else []


def _round(value: Any) -> Any:
    return round(value, 1) if isinstance(value, float) else value


def _cost(report: dict[str, Any]) -> list[str]:
    """What the set cost, when the report records it (`report.json`'s `cost`)."""
    cost = report.get("cost")
    if not cost:
        return ["## Cost", "", "Not recorded by this version of the filter report.", ""]
    if isinstance(cost, dict) and "teacher" in cost:  # the filter report's cost (filter/cost.py)
        from distill.filter.cost import cost_markdown

        return [*cost_markdown(cost), ""]
    if isinstance(cost, dict):
        return ["## Cost", "", *_table(["item", "value"], [[k, _code(v)] for k, v in cost.items()])]
    return ["## Cost", "", _code(cost), ""]


def _commands(stages: list[tuple[str, dict[str, Any], str | None]]) -> list[str]:
    """`stages`: (stage, its manifest, its command line or None where none was recorded)."""
    lines = ["## How it was made", ""]
    for stage, manifest, command in stages:
        if not manifest:
            continue
        versions = manifest.get("versions") or (manifest.get("info") or {}).get("versions") or {}
        lines += [f"### {stage}", ""]
        if command:
            lines += ["```bash", command, "```", ""]
        else:
            lines += [_unrecorded(stage, manifest), ""]
        lines.append(f"- distill git commit: {_code(manifest.get('git_commit'))}")
        if versions:
            lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        finished = manifest.get("finished_at") or manifest.get("merged_at")
        if finished:
            lines.append(f"- finished: {finished}")
        lines.append("")
    return lines


def _unrecorded(stage: str, manifest: dict[str, Any]) -> str:
    """A stage whose manifest has no command line: what it does record of its input and output."""
    config = (manifest.get("info") or {}).get("config") or manifest.get("config") or {}
    where = config.get("input")
    where = where.get("path") if isinstance(where, dict) else where
    what = (
        f"`distill {stage}` of {_code(where)} into {_code(config.get('output'))}"
        if where
        else f"`distill {stage}`"
    )
    if stage == "filter":
        return f"{what}, called from Python (not the `distill` command); its config is in its manifest."
    return f"{what}; its manifest records its whole config (`info.config`), not its command line."


# --- the cards -------------------------------------------------------------------------------------


def card_text(folder: Path, card: CardConfig, body: list[str], *, pairs: bool = False) -> str:
    """The card for `folder`'s shards: the YAML header (through huggingface_hub) + `body`."""
    from huggingface_hub import DatasetCard, DatasetCardData

    files = _shards(folder)
    title = card.pretty_name or "/".join(folder.resolve().parts[-3:])
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    data = DatasetCardData(
        license=card.license or NO_LICENSE,
        pretty_name=title,
        size_categories=[size_category(rows)],
        task_categories=["text-generation"],
        tags=TAGS + (["preference", "dpo"] if pairs else []),
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": DATA_GLOB}]}],
    )
    head = [
        f"# {title}",
        "",
        f"{rows} rows in {len(files)} Parquet shards (`{DATA_GLOB}`), made with `distill`. This card is "
        "generated from the manifests and reports of the stages that made the set.",
        "",
        "```python",
        "import datasets",
        "",
        'ds = datasets.load_dataset("PATH_OR_REPO", split="train")',
        "```",
        "",
    ]
    if files:
        schema = pq.ParquetFile(files[0]).schema_arrow
        head += [
            "## Columns",
            "",
            *_table(["column", "type"], [[f"`{f.name}`", f"`{f.type}`"] for f in schema]),
        ]
    license_line = (
        f"License: `{card.license}`."
        if card.license
        else "License: not set (`card.license` in the recipe section); the header says `unknown`."
    )
    text = DatasetCard(
        f"---\n{data.to_yaml()}\n---\n\n" + "\n".join([*head, license_line, "", *body])
    ).content
    return text.rstrip("\n") + "\n"


def filter_body(
    folder: Path,
    filter_manifest: dict[str, Any],
    report: dict[str, Any],
    gen: dict[str, Any],
    command: str | None,
) -> list[str]:
    """The body of a filter output's card (`folder`: its sft/ or pairs/)."""
    files = _shards(folder)
    config = filter_manifest.get("config") or {}
    return [
        *_generation(gen, files),
        *_verification(config, report),
        *_funnel(report),
        *_decontamination(config, report),
        *_tokens(report, files, gen),
        *_cost(report),
        *_commands([("generate", gen, gen.get("command")), ("filter", filter_manifest, command)]),
    ]


def filter_record(config: dict[str, Any], input_path: str) -> dict[str, Any]:
    """What the filter's manifest will say of how the set was made (it is written after the cards)."""
    return {
        "identity": {"stage": "filter"},
        "config": config,
        "input": {"path": input_path},
        "versions": package_versions(("math-verify", "datasketch", "vllm")),
        "git_commit": git_commit(),
        "finished_at": utc_now(),
    }


def _generate_manifest(filter_manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest of the `distill generate` folder a filter read ({} for traces made elsewhere)."""
    path = (filter_manifest.get("input") or {}).get("path") or ""
    gen = _read_json(Path(path) / "manifest.json") if path and Path(path).is_dir() else {}
    return gen if (gen.get("identity") or {}).get("stage") == "generate" else {}


def write_filter_cards(out: Path, filter_manifest: dict[str, Any], card: CardConfig, log=print) -> list[Path]:
    """`README.md` in the filter's `sft/` and, where written, `pairs/`, from `filter_manifest` (the
    filter's manifest, or `filter_record` before it is written), its report, the generate manifest
    of its input, and the command line `sft/manifest.json` records."""
    out = Path(out)
    report = _read_json(out / "report.json")
    gen = _generate_manifest(filter_manifest)
    if not card.license:
        log(
            "warning: card.license is not set: the dataset card (sft/README.md) says `license: unknown`; "
            "set it (the teacher's terms and the prompts' licenses decide it) before `distill push`"
        )
    command = _read_json(out / "sft" / "manifest.json").get("command")
    written = []
    for name, pairs in (("sft", False), ("pairs", True)):
        folder = out / name
        if not (folder / "manifest.json").is_file():
            continue
        body = filter_body(folder, filter_manifest, report, gen, command)
        atomic_write_text(folder / CARD, card_text(folder, card, body, pairs=pairs))
        written.append(folder / CARD)
    return written


def _source_body(path: str) -> list[str]:
    """A mix source's provenance: its filter folder's manifests and report, when there are."""
    p = Path(path)
    filter_dir = p.parent if p.name == "sft" else p
    fm = _read_json(filter_dir / "manifest.json")
    if (fm.get("identity") or {}).get("stage") != "filter":
        return [f"No filter manifest at {_code(str(filter_dir))}: provenance not recorded.", ""]
    folder = filter_dir / "sft"
    report = _read_json(filter_dir / "report.json")
    command = _read_json(folder / "manifest.json").get("command")
    body = filter_body(folder, fm, report, _generate_manifest(fm), command)
    return ["#" + line if line.startswith("#") else line for line in body]  # one level down


def write_mix_card(out: Path, cfg_card: CardConfig, log=print) -> Path:
    """`README.md` of a `distill mix` output: the sources and their rows (its manifest's `sources`),
    then each source's provenance."""
    out = Path(out)
    mix_manifest = _read_json(out / "manifest.json")
    sources = mix_manifest.get("sources") or []
    card = cfg_card
    if not card.license:
        licenses = {_source_license(s["path"]) for s in sources}
        if len(licenses) == 1 and None not in licenses:
            card = cfg_card.model_copy(update={"license": licenses.pop()})
        else:
            log(
                "warning: mix.card.license is not set (and the sources' cards do not agree on one): the "
                "dataset card says `license: unknown`; set it before `distill push`"
            )
    body = ["## Sources", ""]
    body += _table(
        ["source", "rows taken", "rows available"],
        [[_code(s["path"]), s["rows"], s["available"]] for s in sources],
    )
    for i, s in enumerate(sources):
        body += [f"## Source {i + 1}: {_code(s['path'])}", "", *_source_body(s["path"])]
    body += _commands([("mix", mix_manifest, mix_manifest.get("command"))])
    atomic_write_text(out / CARD, card_text(out, card, body))
    return out / CARD


def _source_license(path: str) -> str | None:
    p = Path(path)
    for folder in (p, p / "sft"):
        if (folder / CARD).is_file():
            try:
                from huggingface_hub import DatasetCard

                value = DatasetCard.load(folder / CARD).data.license
            except Exception:  # an unreadable card: no license known
                return None
            return value if value and value != NO_LICENSE else None
    return None


def card_settings(folder: Path) -> CardConfig:
    """The license and title an existing card gives (none: the defaults)."""
    if not (folder / CARD).is_file():
        return CardConfig()
    from huggingface_hub import DatasetCard

    data = DatasetCard.load(folder / CARD).data
    license_ = data.license if data.license != NO_LICENSE else None
    return CardConfig(license=license_, pretty_name=data.get("pretty_name"))


def rewrite_cards(
    path: Path, license_: str | None = None, pretty_name: str | None = None, log=print
) -> list[Path]:
    """`distill card`: write again the cards of a filter output (its `sft/`, `pairs/`) or a mix
    output, from the manifests on disk: for a folder made before cards existed, or a new license.
    The license and title not given are kept from the present card."""
    path = Path(path)
    filter_dir = path.parent if path.name in ("sft", "pairs") and (path.parent / "sft").is_dir() else path
    manifest = _read_json(filter_dir / "manifest.json")
    stage = (manifest.get("identity") or {}).get("stage")
    if stage == "filter" and manifest.get("complete"):
        folder = filter_dir / "sft"
    elif stage == "mix" and manifest.get("complete"):
        folder = filter_dir
    else:
        raise UserError(
            f"{path}: not a finished `distill filter` or `distill mix` output folder (no complete manifest.json)"
        )
    settings = card_settings(folder)
    card = CardConfig(license=license_ or settings.license, pretty_name=pretty_name or settings.pretty_name)
    if folder is filter_dir:
        return [write_mix_card(folder, card, log)]
    return write_filter_cards(filter_dir, manifest, card, log)
