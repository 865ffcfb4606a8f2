import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill.config import ConfigError
from distill.errors import UserError
from distill.filter.mix import run_mix
from distill.schema import MESSAGE_TYPE
from distill.stages import load_stage_config


def sft_set(folder, prefix, n, files=2):
    (folder / "data").mkdir(parents=True)
    per = -(-n // files)
    for f in range(files):
        ids = [f"{prefix}{i}" for i in range(f * per, min(n, (f + 1) * per))]
        msgs = [
            [{"role": "user", "content": i}, {"role": "assistant", "content": "<think>\nr\n</think>\n\na"}]
            for i in ids
        ]
        pq.write_table(
            pa.table({"messages": pa.array(msgs, pa.list_(MESSAGE_TYPE)), "id": ids}),
            folder / "data" / f"train-{f:05d}-of-{files:05d}.parquet",
        )
    return folder


def recipe(tmp_path, sources, **extra):
    r = tmp_path / "mix.yaml"
    r.write_text(json.dumps({"mix": {"sources": sources, "output": str(tmp_path / "out"), **extra}}))
    return r


def ids_of(out):
    return [
        i for p in sorted((out / "data").glob("*.parquet")) for i in pq.read_table(p).column("id").to_pylist()
    ]


def test_mix_takes_the_asked_rows_shuffled_and_deterministic(tmp_path):
    a, b = sft_set(tmp_path / "a", "a", 30), sft_set(tmp_path / "b", "b", 10)
    cfg = load_stage_config(
        "mix", recipe(tmp_path, [{"path": str(a), "rows": 12}, {"path": str(b), "rows": 4}], shard_rows=5)
    )
    run_mix(cfg, log=lambda m: None)
    ids = ids_of(tmp_path / "out")
    assert len(ids) == 16 and len(set(ids)) == 16
    assert sum(i.startswith("a") for i in ids) == 12 and sum(i.startswith("b") for i in ids) == 4
    assert ids != sorted(ids)  # shuffled
    assert len(list((tmp_path / "out" / "data").glob("*.parquet"))) == 4
    cfg.output = str(tmp_path / "again")
    run_mix(cfg, log=lambda m: None)
    assert ids_of(tmp_path / "again") == ids
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["totals"]["rows"] == 16


def test_weights_and_repeat(tmp_path):
    a, b = sft_set(tmp_path / "a", "a", 10), sft_set(tmp_path / "b", "b", 2, files=1)
    src = [{"path": str(a), "weight": 3}, {"path": str(b), "weight": 1, "repeat": True}]
    run_mix(load_stage_config("mix", recipe(tmp_path, src, total=8)), log=lambda m: None)
    ids = ids_of(tmp_path / "out")
    assert sum(i.startswith("a") for i in ids) == 6 and sum(i.startswith("b") for i in ids) == 2


def test_too_few_rows_is_a_clear_error(tmp_path):
    b = sft_set(tmp_path / "b", "b", 3, files=1)
    with pytest.raises(UserError, match="has 3 rows, 5 asked"):
        run_mix(load_stage_config("mix", recipe(tmp_path, [{"path": str(b), "rows": 5}])), log=lambda m: None)


def test_source_needs_rows_or_weight(tmp_path):
    with pytest.raises(ConfigError, match="exactly one of"):
        load_stage_config("mix", recipe(tmp_path, [{"path": "x"}]))
