"""Does distillation still work? The quickstart's loop at a chosen size, and the student's gain.

    .venv/bin/python benchmarks/distillation_gain.py --seed 1            # the quickstart's size
    .venv/bin/python benchmarks/distillation_gain.py --seed 2 --train 64 --heldout 100

Writes a fresh arithmetic set (`distill data arithmetic --seed S`), runs `distill run` on
`recipes/quickstart.yaml` with its data paths pointed there and its sampling, selection and
training seeds set to S, and reads the before/after evaluation: held-out pass@1 of the built-in
model and of the student trained on its own verified traces, the gain B - A with its paired 95%
interval over the held-out problems (`distill.eval.metrics.paired_difference`), the funnel, and
each stage's time. A change that breaks learning (labels, templates, selection) shows up here as
a lost gain. Results: `benchmarks/results/distillation_gain-seed{S}.json`.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--train", type=int, default=None, help="Training problems (default: the recipe's).")
    parser.add_argument("--heldout", type=int, default=100, help="Held-out problems.")
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "quickstart.yaml")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/distill-gain"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from distill.eval.metrics import paired_difference
    from distill.eval.run import load_results

    recipe = yaml.safe_load(args.recipe.read_text())
    work = args.workdir / f"seed{args.seed}"
    n_train = args.train or recipe["generate"]["input"].get("limit") or 96
    data = work / "data"
    distill = [sys.executable, "-m", "distill.cli"]
    subprocess.run(
        [*distill, "data", "arithmetic", "-o", str(data), "--n", str(n_train), "--heldout", str(args.heldout),
         "--seed", str(args.seed)],
        check=True,
    )  # fmt: skip
    recipe["generate"]["input"]["path"] = str(data / "train.jsonl")
    recipe["generate"]["input"].pop("limit", None)
    recipe["generate"].setdefault("sampling", {})["seed"] = args.seed
    recipe["filter"].setdefault("select", {})["seed"] = args.seed
    recipe["train"]["seed"] = args.seed
    for bench in recipe["eval"]["benchmarks"]:
        bench["path"], bench["limit"] = str(data / "heldout.jsonl"), args.heldout
    recipe["eval"].setdefault("sampling", {})["seed"] = args.seed
    recipe["run"]["output"] = str(work / "run")
    resolved = work / "recipe.yaml"
    resolved.write_text(yaml.safe_dump(recipe, sort_keys=False))

    started = time.monotonic()
    subprocess.run([*distill, "run", str(resolved)], check=True, cwd=ROOT)
    wall = time.monotonic() - started

    run = work / "run"
    before, after = load_results(run / "eval-baseline"), load_results(run / "eval")
    name = recipe["eval"]["benchmarks"][0].get("name") or "heldout"
    gain = paired_difference(before, after, name)
    state = json.loads((run / "run.json").read_text())
    report = json.loads((run / "filter" / "report.json").read_text())
    result = {
        "seed": args.seed,
        "train_problems": n_train,
        "heldout_problems": args.heldout,
        "pass@1": {
            "before": before["benchmarks"][name]["metrics"]["pass@1"],
            "after": after["benchmarks"][name]["metrics"]["pass@1"],
        },
        "gain": gain,
        "samples_per_problem": recipe["eval"]["sampling"]["num_samples"],
        "funnel": report.get("funnel"),
        "stage_seconds": {k: v.get("seconds") for k, v in state["stages"].items()},
        "wall_seconds": round(wall, 1),
        "host": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "recipe": str(args.recipe.relative_to(ROOT))
        if args.recipe.is_relative_to(ROOT)
        else str(args.recipe),
    }
    out = args.out or RESULTS / f"distillation_gain-seed{args.seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"pass@1 {result['pass@1']['before']:.3f} -> {result['pass@1']['after']:.3f}; gain {gain['diff']:+.3f} "
        f"[{gain['lo']:+.3f}, {gain['hi']:+.3f}] (excludes zero: {gain['excludes_zero']}); {wall / 60:.1f} min"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
