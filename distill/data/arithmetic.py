"""A deterministic set of easy arithmetic word problems (two-number sums, take-aways, small
products), for a model as small as the built-in SmolLM2-135M-Instruct, which cannot do GSM8K.

`make_problems(n, seed, heldout)` draws templated problems from `random.Random(seed)`, drops any
whose text (case and spacing ignored) was drawn before, and assigns splits after that: the first
`heldout` unique problems are the held-out split, the next `n` the training split. So the two
splits never share a problem text, the held-out split depends only on `seed` and `heldout` (not on
`n`), and a larger `n` extends the training split. Ids are `arith-` + the first 12 hex digits of
the text's sha256: the same problem has the same id in every set that contains it.

Operands: sums of 2..30 and 2..19 (under 50), differences of a number in 5..49 and a smaller one
(at least 1 left), products of 2..12 by 2..9. Golds are the integer result as a string.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from distill.errors import UserError

SOURCE = "arithmetic"
TRAIN = "train.jsonl"
HELDOUT = "heldout.jsonl"
README = "README.md"

OPS = ("add", "sub", "mul")

# (name, subject pronoun, object pronoun)
NAMES = (
    ("Tom", "he", "him"),
    ("Anna", "she", "her"),
    ("Ben", "he", "him"),
    ("Mia", "she", "her"),
    ("Sam", "he", "him"),
    ("Lily", "she", "her"),
    ("Max", "he", "him"),
    ("Emma", "she", "her"),
    ("Leo", "he", "him"),
    ("Zoe", "she", "her"),
    ("Omar", "he", "him"),
    ("Priya", "she", "her"),
    ("Carlos", "he", "him"),
    ("Yuki", "she", "her"),
    ("Noah", "he", "him"),
    ("Sofia", "she", "her"),
    ("Ravi", "he", "him"),
    ("Grace", "she", "her"),
    ("Jack", "he", "him"),
    ("Nora", "she", "her"),
)

ITEMS = (
    "apples",
    "oranges",
    "pencils",
    "stickers",
    "marbles",
    "books",
    "cookies",
    "stamps",
    "shells",
    "cards",
    "balloons",
    "crayons",
    "toy cars",
    "beads",
    "buttons",
    "candies",
    "erasers",
    "lemons",
    "peaches",
    "plums",
)
BOXED = ("eggs", "cupcakes", "chocolates", "muffins", "cookies", "candles")
PRICED = (
    ("notebook", "notebooks"),
    ("pen", "pens"),
    ("ticket", "tickets"),
    ("toy", "toys"),
    ("ball", "balls"),
)

# Placeholders: {a} {b} the operands (the result is a + b, a - b or a * b), {name} {name2} two
# different people, {He}/{he} {him} the first one's pronouns, {obj} a plural noun from the
# template's pool, {thing}/{things} a priced item.
TEMPLATES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "add": (
        ("{name} has {a} {obj}. {He} buys {b} more. How many {obj} does {name} have now?", ITEMS),
        (
            "{name} collected {a} {obj} on Monday and {b} {obj} on Tuesday. "
            "How many {obj} did {name} collect in all?",
            ITEMS,
        ),
        (
            "There are {a} {obj} on the table. {name} puts {b} more {obj} on the table. "
            "How many {obj} are on the table now?",
            ITEMS,
        ),
        ("{name} has {a} {obj} and {name2} has {b} {obj}. How many {obj} do they have together?", ITEMS),
        (
            "{name} found {a} {obj}. Then {he} found {b} more. How many {obj} did {name} find altogether?",
            ITEMS,
        ),
        ("{name} had {a} {obj}. {name2} gave {him} {b} more. How many {obj} does {name} have now?", ITEMS),
    ),
    "sub": (
        (
            "{name} has {a} {obj}. {He} gives {b} of them to {name2}. How many {obj} does {name} have left?",
            ITEMS,
        ),
        (
            "There were {a} {obj} in a basket. {name} took {b} of them. "
            "How many {obj} are left in the basket?",
            ITEMS,
        ),
        ("{name} had {a} {obj}. {He} lost {b} of them. How many {obj} does {name} have now?", ITEMS),
        (
            "{name} has {a} {obj}. {name2} has {b} {obj}. How many more {obj} does {name} have than {name2}?",
            ITEMS,
        ),
        ("{name} had {a} {obj} and sold {b} of them. How many {obj} does {name} have left?", ITEMS),
        ("{name} needs {a} {obj}. {He} already has {b}. How many more {obj} does {name} need?", ITEMS),
    ),
    "mul": (
        ("A box holds {a} rows of {b} {obj}. How many {obj} are in the box?", BOXED),
        ("{name} buys {a} packs of {obj}. Each pack has {b} {obj}. How many {obj} does {name} buy?", ITEMS),
        ("There are {a} bags. Each bag has {b} {obj}. How many {obj} are there in total?", ITEMS),
        ("{name} reads {b} pages every day for {a} days. How many pages does {name} read?", ()),
        ("Each {thing} costs {b} dollars. How many dollars do {a} {things} cost?", ()),
        ("{name} puts {b} {obj} on each of {a} plates. How many {obj} does {name} use?", BOXED),
    ),
}


@dataclass(frozen=True)
class ArithmeticProblem:
    """One problem: its text and the operation and operands it was made from."""

    op: str
    a: int
    b: int
    problem: str

    @property
    def answer(self) -> int:
        return {"add": self.a + self.b, "sub": self.a - self.b, "mul": self.a * self.b}[self.op]

    @property
    def id(self) -> str:
        return problem_id(self.problem)

    def row(self) -> dict[str, str]:
        return {
            "id": self.id,
            "problem": self.problem,
            "answer": str(self.answer),
            "domain": "math",
            "source": SOURCE,
        }


def problem_id(text: str) -> str:
    return "arith-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _operands(op: str, rng: random.Random) -> tuple[int, int]:
    if op == "add":
        return rng.randint(2, 30), rng.randint(2, 19)
    if op == "sub":
        a = rng.randint(5, 49)
        return a, rng.randint(2, a - 1)
    return rng.randint(2, 12), rng.randint(2, 9)


def draw_problem(rng: random.Random) -> ArithmeticProblem:
    """One random problem (every choice comes from `rng`, in a fixed order)."""
    op = rng.choice(OPS)
    template, pool = rng.choice(TEMPLATES[op])
    a, b = _operands(op, rng)
    (name, he, him), (name2, _, _) = rng.sample(NAMES, 2)
    thing, things = rng.choice(PRICED)
    obj = rng.choice(pool) if pool else ""
    text = template.format(
        a=a,
        b=b,
        name=name,
        name2=name2,
        he=he,
        He=he.capitalize(),
        him=him,
        obj=obj,
        thing=thing,
        things=things,
    )
    return ArithmeticProblem(op=op, a=a, b=b, problem=text)


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def make_problems(
    n: int, seed: int, heldout: int = 0, max_misses: int = 10_000
) -> tuple[list[ArithmeticProblem], list[ArithmeticProblem]]:
    """(train, heldout): `n` and `heldout` problems with distinct texts, the same for the same seed.

    The held-out split is the first `heldout` unique problems drawn, training the next `n`."""
    if n < 0 or heldout < 0:
        raise UserError(f"counts must not be negative (--n {n}, --heldout {heldout})")
    rng = random.Random(seed)
    seen: set[str] = set()
    ids: set[str] = set()
    problems: list[ArithmeticProblem] = []
    misses = 0
    while len(problems) < n + heldout:
        p = draw_problem(rng)
        key = _key(p.problem)
        if key in seen or p.id in ids:
            misses += 1
            if misses > max_misses:
                raise UserError(
                    f"only {len(problems)} distinct arithmetic problems found after {max_misses} repeats; "
                    f"ask for fewer than {n + heldout}"
                )
            continue
        misses = 0
        seen.add(key)
        ids.add(p.id)
        problems.append(p)
    return problems[heldout:], problems[:heldout]


def _jsonl(problems: list[ArithmeticProblem]) -> str:
    return "".join(json.dumps(p.row(), ensure_ascii=False) + "\n" for p in problems)


def write_arithmetic(out: Path, n: int, seed: int, heldout: int = 0) -> dict:
    """Write `out/train.jsonl`, `out/heldout.jsonl` and `out/README.md` (how they were made);
    returns what the README says as a dict. The same arguments write the same bytes."""
    from distill.provenance import atomic_write_text

    train, held = make_problems(n, seed, heldout)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    texts = {TRAIN: _jsonl(train), HELDOUT: _jsonl(held)}
    for name, text in texts.items():
        atomic_write_text(out / name, text)
    info = {
        "command": f"distill data arithmetic -o {out} --n {n} --seed {seed} --heldout {heldout}",
        "seed": seed,
        "files": {
            name: {
                "rows": len(split),
                "sha256": hashlib.sha256(texts[name].encode("utf-8")).hexdigest(),
                "operations": dict(sorted(Counter(p.op for p in split).items())),
            }
            for name, split in ((TRAIN, train), (HELDOUT, held))
        },
    }
    atomic_write_text(out / README, _readme(info))
    return info


def _readme(info: dict) -> str:
    rows = "\n".join(
        f"| `{name}` | {f['rows']} | "
        + ", ".join(f"{op} {c}" for op, c in f["operations"].items())
        + f" | `{f['sha256']}` |"
        for name, f in info["files"].items()
    )
    return f"""# Arithmetic word problems

Made by

```bash
{info["command"]}
```

(seed {info["seed"]}); the same command writes the same bytes.

| file | rows | operations | sha256 |
| --- | --- | --- | --- |
{rows}

Rows: `{{"id", "problem", "answer", "domain": "math", "source": "{SOURCE}"}}`. Templated word
problems (names, objects and verbs vary): sums under 50, take-aways leaving at least 1, products
of 2..12 by 2..9; `answer` is the integer result. No problem text (case and spacing ignored) is
in both files; the held-out file depends only on the seed and its size. Ids are `arith-` + 12 hex
digits of the text's sha256.

Use `train.jsonl` as `distill generate` input and `heldout.jsonl` as an eval benchmark (pass the
files, not this folder: a folder is read as one input).
"""
