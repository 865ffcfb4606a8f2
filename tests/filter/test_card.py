"""The dataset card (`README.md`) the filter writes in `sft/` (and `pairs/`) and `distill mix` in its
output: its YAML header as the hub reads it, its body drawn from the manifests and the report, and
`datasets.load_dataset(folder)` reading the folder through it, offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from distill.errors import UserError
from distill.filter.card import DATA_GLOB, CardConfig, rewrite_cards, size_category
from distill.filter.config import FilterConfig
from distill.filter.mix import MixConfig, run_mix
from distill.filter.run import identity_of, run_filter
from tests.conftest import DISTILL
from tests.filter.helpers import quickstart_traces

RECIPE = """
filter:
  verify:
    math: {answer_format: lenient}
  readability:
    think_tags: false
    min_tokens: 4
  dedup:
    field: content
    scope: prompt
  select:
    max_per_prompt: 2
    rule: shortest
    preference_pairs: true
  card:
    license: apache-2.0
    pretty_name: Arithmetic traces (quickstart)
  workers: 1
"""


def _header(path: Path) -> tuple[dict, str]:
    return _header_of(path.read_text(encoding="utf-8"))


def _header_of(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def _load(folder: Path):
    """`datasets.load_dataset(folder)` in a fresh process with the hub switched off."""
    code = (
        "import sys, datasets; ds = datasets.load_dataset(sys.argv[1]); "
        "print(ds['train'].num_rows, ','.join(ds.keys()), ','.join(ds['train'].column_names))"
    )
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    env["HF_HOME"] = str(folder.parent / ".hf-home")  # no cached copy of anything
    out = subprocess.run(
        [*DISTILL[:1], "-c", code, str(folder)], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    rows, splits, columns = out.stdout.strip().splitlines()[-1].split(" ")
    return int(rows), splits.split(","), columns.split(",")


@pytest.fixture(scope="module")
def filtered(tmp_path_factory) -> Path:
    """The quickstart's SFT set shape: the real `distill filter` command (so its command line is
    recorded) with the quickstart's filter section, a benchmark file holding one of the problems."""
    root = tmp_path_factory.mktemp("card")
    traces = quickstart_traces(root / "generate")
    problem = pq.read_table(traces / "data" / "train-00000-of-00002.parquet").column("problem")[0].as_py()
    bench = root / "bench.jsonl"
    bench.write_text(
        json.dumps({"question": problem}) + "\n" + json.dumps({"question": "What is 7 x 8?"}) + "\n"
    )
    (root / "recipe.yaml").write_text(RECIPE)
    argv = ["filter", str(traces), "-o", str(root / "filter"), "--recipe", str(root / "recipe.yaml")]
    argv += ["--decontaminate", str(bench)]
    out = subprocess.run([*DISTILL, *argv], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return root / "filter"


def test_the_sft_card_header_is_what_the_hub_reads(filtered):
    meta, _ = _header(filtered / "sft" / "README.md")
    kept = json.loads((filtered / "manifest.json").read_text())["totals"]["kept"]
    assert kept > 0
    assert meta["license"] == "apache-2.0"
    assert meta["pretty_name"] == "Arithmetic traces (quickstart)"
    assert meta["size_categories"] == [size_category(kept)] == ["n<1K"]
    assert meta["task_categories"] == ["text-generation"]
    assert {"distillation", "reasoning", "synthetic", "distill"} <= set(meta["tags"])
    assert meta["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": DATA_GLOB}]}
    ]
    # the configs' files are exactly the shards the manifest records
    shards = json.loads((filtered / "sft" / "manifest.json").read_text())["shards"]
    assert sorted(
        p.relative_to(filtered / "sft").as_posix() for p in (filtered / "sft").glob(DATA_GLOB)
    ) == sorted(shards)


def test_the_sft_card_body_comes_from_the_manifests_and_the_report(filtered):
    _, body = _header(filtered / "sft" / "README.md")
    report = json.loads((filtered / "report.json").read_text())
    # teacher and its revision, sampling, prompt sources
    assert "`smollm2-135m`, revision `642210b1c5ff0a9f`" in body
    assert "temperature `0.6`, top_p `0.95`" in body
    assert "prompts read from `data/arithmetic/train.jsonl`" in body
    assert "| `arithmetic` |" in body
    # verifiers and their policies
    assert (
        "math → `math`" in body
        and "answer format `lenient`" in body
        and "on a verifier error: `exclude`" in body
    )
    # the funnel and the reject reasons, as the report counts them
    for f in report["funnel"]:
        assert f"| {f['stage']} | {f['dropped']} | {f['rows']} |" in body
    for reason, n in report["reasons"].items():
        assert f"| {reason} | {n} |" in body
    # decontamination per benchmark file: the problem in bench.jsonl took its prompt's samples
    contaminated = sum(n for r, n in report["reasons"].items() if r.startswith("decontaminate:"))
    assert contaminated > 0
    assert f"bench.jsonl` | {contaminated} |" in body
    # token statistics
    assert "completion tokens in this set:" in body and "| kept |" in body
    # the exact command and the versions
    assert f"distill filter {filtered.parent / 'generate'} -o {filtered}" in body
    assert "--decontaminate" in body
    assert "math-verify" in body and "### generate" in body and "### filter" in body
    assert "## Cost" in body
    # the cost lines of the report: the quickstart-like folder has no generate record, so its rows' tokens
    cost = report["cost"]
    assert f"Teacher (the input rows (no generate record)): {cost['teacher']['completion_tokens']:,} completion tokens" in body
    assert "| where the completion tokens went |" in body


def test_load_dataset_reads_the_sft_folder_through_its_card_offline(filtered):
    kept = json.loads((filtered / "manifest.json").read_text())["totals"]["kept"]
    rows, splits, columns = _load(filtered / "sft")
    assert (rows, splits) == (kept, ["train"])
    assert columns[0] == "messages"


def test_pairs_get_a_card_too(filtered):
    meta, _ = _header(filtered / "pairs" / "README.md")
    assert {"preference", "dpo"} <= set(meta["tags"])
    rows, splits, columns = _load(filtered / "pairs")
    assert splits == ["train"] and rows == json.loads((filtered / "report.json").read_text())["pairs"] > 0
    assert "chosen" in columns and "rejected" in columns


def test_a_mix_output_gets_a_card_with_its_sources_provenance(filtered, tmp_path):
    cfg = MixConfig(sources=[{"path": str(filtered / "sft"), "rows": 5}], output=str(tmp_path / "mix"))
    run_mix(cfg, log=lambda m: None)
    meta, body = _header(tmp_path / "mix" / "README.md")
    assert meta["license"] == "apache-2.0"  # the one license its sources' cards agree on
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": DATA_GLOB}]
    assert f"| `{filtered / 'sft'}` | 5 |" in body
    assert "#### Funnel" in body or "### Funnel" in body  # the source's own provenance, one level down
    assert "revision `642210b1c5ff0a9f`" in body
    assert _load(tmp_path / "mix")[0] == 5
    assert rewrite_cards(tmp_path / "mix", "cc-by-4.0", log=lambda m: None) == [
        tmp_path / "mix" / "README.md"
    ]
    assert _header(tmp_path / "mix" / "README.md")[0]["license"] == "cc-by-4.0"


def test_an_unset_license_is_unknown_with_a_warning(tmp_path):
    traces = quickstart_traces(tmp_path / "generate", prompts=4)
    cfg = FilterConfig(input=str(traces), output=str(tmp_path / "out"), workers=1)
    logs: list[str] = []
    run_filter(cfg, log=logs.append)
    meta, body = _header(tmp_path / "out" / "sft" / "README.md")
    assert meta["license"] == "unknown"
    assert any("card.license is not set" in line for line in logs)
    assert "called from Python" in body  # no command line to record: said so, not invented


def test_the_card_settings_are_not_part_of_the_outputs_identity(tmp_path):
    files = [quickstart_traces(tmp_path / "g", prompts=2) / "data" / "train-00000-of-00002.parquet"]
    plain = FilterConfig(input=str(files[0]))
    licensed = FilterConfig(input=str(files[0]), card=CardConfig(license="mit"))
    assert identity_of(plain, files) == identity_of(licensed, files)


def test_distill_card_writes_the_cards_again_with_a_new_license(filtered, tmp_path):
    """A folder made before cards existed (no README.md), then a license set afterwards: the filter
    itself leaves a complete folder alone, `distill card` writes the cards from the manifests."""
    folder = tmp_path / "filter"
    shutil.copytree(filtered, folder)
    before = (folder / "sft" / "README.md").read_text()
    for name in ("sft", "pairs"):
        (folder / name / "README.md").unlink()
    out = subprocess.run([*DISTILL, "card", str(folder), "--license", "mit"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(folder / "sft" / "README.md"), str(folder / "pairs" / "README.md")]
    meta, body = _header(folder / "sft" / "README.md")
    assert meta["license"] == "mit" and meta["pretty_name"].endswith(
        "filter/sft"
    )  # no card: the default title

    def made(text: str) -> str:  # what the manifests and the report say (not the time it was written)
        return text.split("## Teacher and sampling")[1].split("- finished:")[0]

    assert made(body) == made(_header_of(before)[1])
    assert f"distill filter {filtered.parent / 'generate'}" in body
    rewrite_cards(folder / "sft", pretty_name="Renamed")  # the license is kept from the card
    meta, _ = _header(folder / "sft" / "README.md")
    assert (meta["license"], meta["pretty_name"]) == ("mit", "Renamed")
    with pytest.raises(UserError, match="not a finished"):
        rewrite_cards(tmp_path)
