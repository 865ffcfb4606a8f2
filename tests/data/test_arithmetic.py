"""`distill data arithmetic`: deterministic, disjoint splits, correct golds, exact counts."""

from __future__ import annotations

import json
import random
import re

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.data.arithmetic import (
    HELDOUT,
    TRAIN,
    draw_problem,
    make_problems,
    problem_id,
    write_arithmetic,
)
from distill.errors import UserError
from distill.inputs import InputConfig, read_prompts


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_same_seed_same_bytes_other_seed_different(tmp_path):
    write_arithmetic(tmp_path / "a", n=200, seed=7, heldout=50)
    write_arithmetic(tmp_path / "b", n=200, seed=7, heldout=50)
    write_arithmetic(tmp_path / "c", n=200, seed=8, heldout=50)
    for name in (TRAIN, HELDOUT):
        same = (tmp_path / "a" / name).read_bytes()
        assert same == (tmp_path / "b" / name).read_bytes()
        assert same != (tmp_path / "c" / name).read_bytes()


def test_counts_exact_and_rows_have_the_contract(tmp_path):
    info = write_arithmetic(tmp_path, n=300, seed=0, heldout=40)
    train, held = _rows(tmp_path / TRAIN), _rows(tmp_path / HELDOUT)
    assert len(train) == 300 and len(held) == 40
    assert info["files"][TRAIN]["rows"] == 300 and info["files"][HELDOUT]["rows"] == 40
    for row in train + held:
        assert list(row) == ["id", "problem", "answer", "domain", "source"]
        assert row["domain"] == "math" and row["source"] == "arithmetic"
        assert isinstance(row["answer"], str) and re.fullmatch(r"\d+", row["answer"])
        assert row["id"] == problem_id(row["problem"])
    assert len({r["id"] for r in train + held}) == 340
    readme = (tmp_path / "README.md").read_text()
    assert "--n 300 --seed 0 --heldout 40" in readme and "(seed 0)" in readme


def test_splits_are_disjoint_by_text():
    train, held = make_problems(2000, seed=3, heldout=500)
    key = lambda p: " ".join(p.problem.lower().split())  # noqa: E731
    assert len({key(p) for p in train}) == 2000 and len({key(p) for p in held}) == 500
    assert not {key(p) for p in train} & {key(p) for p in held}


def test_heldout_depends_only_on_seed_and_its_size():
    train_small, held_small = make_problems(10, seed=5, heldout=30)
    train_big, held_big = make_problems(500, seed=5, heldout=30)
    assert held_small == held_big
    assert train_big[:10] == train_small  # a larger --n extends the training split


def test_golds_are_correct_and_operands_are_small():
    train, held = make_problems(1500, seed=11, heldout=100)
    ops = set()
    for p in train + held:
        ops.add(p.op)
        expect = {"add": p.a + p.b, "sub": p.a - p.b, "mul": p.a * p.b}[p.op]
        assert p.answer == expect and p.row()["answer"] == str(expect)
        # both operands are in the text, in the order they were drawn
        assert [int(x) for x in re.findall(r"\d+", p.problem)] in ([p.a, p.b], [p.b, p.a])
        if p.op == "add":
            assert expect < 50
        elif p.op == "sub":
            assert 1 <= expect < 50
        else:
            assert 2 <= p.a <= 12 and 2 <= p.b <= 9
    assert ops == {"add", "sub", "mul"}


def test_templates_fill_every_placeholder():
    rng = random.Random(0)
    for _ in range(2000):
        text = draw_problem(rng).problem
        assert "{" not in text and "}" not in text and "  " not in text
        assert text.endswith("?") and text[0].isupper()


def test_rows_read_back_as_distill_input(tmp_path):
    write_arithmetic(tmp_path, n=20, seed=1, heldout=5)
    prompts = read_prompts(InputConfig(path=str(tmp_path / TRAIN)))
    assert prompts.table.num_rows == 20 and not prompts.rejects
    assert prompts.table.column("answer").to_pylist() == [r["answer"] for r in _rows(tmp_path / TRAIN)]


def test_too_many_problems_or_negative_counts_are_user_errors(monkeypatch):
    import distill.data.arithmetic as arithmetic

    fixed = arithmetic.ArithmeticProblem("add", 2, 3, "Tom has 2 apples. He buys 3 more. How many?")
    monkeypatch.setattr(arithmetic, "draw_problem", lambda rng: fixed)
    with pytest.raises(UserError, match="only 1 distinct"):
        arithmetic.make_problems(5, seed=0, max_misses=100)
    monkeypatch.undo()
    with pytest.raises(UserError):
        make_problems(-1, seed=0)


def test_cli_writes_both_files(tmp_path):
    out = tmp_path / "arith"
    res = CliRunner().invoke(
        app, ["data", "arithmetic", "-o", str(out), "--n", "25", "--seed", "4", "--heldout", "6"]
    )
    assert res.exit_code == 0, res.output
    assert len(_rows(out / TRAIN)) == 25 and len(_rows(out / HELDOUT)) == 6
    lib = tmp_path / "lib"
    write_arithmetic(lib, n=25, seed=4, heldout=6)
    assert (out / TRAIN).read_bytes() == (lib / TRAIN).read_bytes()
    assert str(out) in res.output


def test_the_bundled_quickstart_set_is_what_the_command_writes(tmp_path):
    """data/arithmetic/ (the quickstart's problems) is exactly `distill data arithmetic`'s output for
    the command its README names: nobody edited it by hand, and the generator did not drift."""
    from pathlib import Path

    from distill.data.arithmetic import write_arithmetic

    bundled = Path(__file__).resolve().parents[2] / "data" / "arithmetic"
    write_arithmetic(tmp_path, n=128, seed=0, heldout=100)
    for name in ("train.jsonl", "heldout.jsonl"):
        assert (tmp_path / name).read_bytes() == (bundled / name).read_bytes(), name
