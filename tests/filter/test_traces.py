"""`distill filter` on trace sets made by other tools, through the command line: OpenR1-Math rows
(list columns `generations`, `finish_reasons`), OpenThoughts / Bespoke-Stratos chats
(`conversations` of `{from, value}` turns with Sky-T1's thought/solution markers), plain
problem/answer/completion JSONL, a trace JSONL without `prompt`, and files that lack a required
column (a one-line error, exit 2). The fixtures are a few rows each, in the real shapes."""

from __future__ import annotations

import json
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill.config import ConfigError
from distill.errors import UserError
from distill.filter.config import FilterInput
from distill.filter.run import identity_of
from distill.filter.traces import read_trace_file, split_completion
from distill.schema import prompt_id_for, stable_hash
from distill.stages import load_stage_config
from tests.conftest import DISTILL

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

# OpenR1-Math-220k: one row per problem, 2-4 R1 generations in list columns
OPENR1 = [
    {
        "problem": "Compute $\\frac{1}{2} + \\frac{1}{4}$.",
        "answer": "\\frac{3}{4}",
        "uuid": "4f1b2c3d-0001-5e6f-8a9b-0c1d2e3f4a5b",
        "generations": [
            "<think>\nOkay, so I need to add one half and one quarter. The denominators are 2 and 4, and "
            "the least common denominator is 4. One half is the same as two quarters, because multiplying "
            "the numerator and the denominator by 2 gives 2/4. Now two quarters plus one quarter is three "
            "quarters. Let me double-check with decimals: 0.5 plus 0.25 equals 0.75, which is 3/4. That "
            "matches, so the sum is three quarters.\n</think>\n\nWriting both fractions over the common "
            "denominator 4:\n$$\\frac{1}{2} + \\frac{1}{4} = \\frac{2}{4} + \\frac{1}{4} = \\frac{3}{4}.$$"
            "\n\nThe answer is $\\boxed{\\frac{3}{4}}$.",
            "<think>\nHmm, adding fractions requires a shared denominator. Halves can be turned into "
            "quarters: 1/2 equals 2/4. Then the problem becomes 2/4 + 1/4, and adding numerators while "
            "keeping the denominator gives 3/4. Is that already in lowest terms? The numerator 3 and the "
            "denominator 4 share no factor other than 1, so yes, it cannot be reduced any further. I am "
            "confident in this result after checking it twice.\n</think>\n\n"
            "$\\frac{1}{2} + \\frac{1}{4} = \\boxed{\\frac{3}{4}}$",
        ],
        "finish_reasons": None,  # unknown for some OpenR1 rows
        "correctness_math_verify": [True, True],
    },
    {
        "problem": "Solve for $x$: $2x + 3 = 11$.",
        "answer": "4",
        "uuid": "4f1b2c3d-0002-5e6f-8a9b-0c1d2e3f4a5b",
        "generations": [
            "<think>\nI need to isolate x in the linear equation 2x + 3 = 11. First subtract 3 from both "
            "sides, which leaves 2x = 8. Then divide both sides by 2, so x = 4. Substituting back to "
            "verify: 2 times 4 is 8, and 8 plus 3 is 11, exactly the right-hand side. Good, the "
            "solution checks out and there is only one solution since the equation is linear.\n</think>"
            "\n\nSubtracting 3 gives $2x = 8$, so $x = \\boxed{4}$.",
            "<think>\nLet me think about 2x + 3 = 11 in a slightly different way. Moving the constant term "
            "across, 2x equals 11 minus 3, and I will quickly say that is 14 (oops, I added instead of "
            "subtracting, but I will not notice the slip). Halving 14 then gives 7 for the unknown. I "
            "will present this value as the final result without substituting it back into the original "
            "equation to check it.\n</think>\n\nTherefore $x = \\boxed{7}$.",
        ],
        "finish_reasons": ["stop", "stop"],
        "correctness_math_verify": [True, False],
    },
    {
        "problem": "A rectangle has perimeter $30$ and length $9$. Find its area.",
        "answer": "54",
        "uuid": "4f1b2c3d-0003-5e6f-8a9b-0c1d2e3f4a5b",
        "generations": [
            "<think>\nThe perimeter of a rectangle is twice the sum of its length and its width. With a "
            "perimeter of thirty, the length plus the width must be fifteen. The length is nine, hence "
            "the width is six. Wait, before multiplying, maybe I should reconsider whether the problem "
            "intends the perimeter to include something else, such as a border, and then reconsider the "
            "units, and then reconsider whether the figure could be a square instead of a rectangle",
            "<think>\nUsing P = 2(l + w): 30 = 2(9 + w), so 9 + w = 15 and w = 6. The area of a rectangle "
            "is length times width, which here is 9 times 6. Nine sixes are fifty-four. As a sanity check, "
            "a 9 by 6 rectangle has perimeter 2 times 15, which is 30, as given in the statement. So the "
            "area is 54 square units.\n</think>\n\nThe width is $15 - 9 = 6$, so the area is "
            "$9 \\cdot 6 = \\boxed{54}$.",
        ],
        "finish_reasons": ["length", "stop"],
        "correctness_math_verify": [False, True],
    },
]
for _row in OPENR1:  # the other columns of the real set, which the filter does not read
    _n = len(_row["generations"])
    _row.update(
        solution=f"The answer is $\\boxed{{{_row['answer']}}}$.",
        problem_type="Algebra",
        question_type="math-word-problem",
        source="olympiads",
        is_reasoning_complete=[True] * _n,
        correctness_llama=None,
        correctness_count=sum(_row["correctness_math_verify"]),
        messages=[
            {"content": _row["problem"], "role": "user"},
            {"content": _row["generations"][-1], "role": "assistant"},
        ],
    )

SKY_T1_SYSTEM = (
    "Your role as an assistant involves thoroughly exploring questions through a systematic long "
    "thinking process before providing the final precise and accurate solutions. Please structure your "
    "response into two main sections: Thought and Solution. In the Thought section, detail your "
    "reasoning process using the specified format: <|begin_of_thought|> {thought with steps separated "
    "with '\\n\\n'} <|end_of_thought|> Each step should include detailed considerations. In the Solution "
    "section, based on various attempts, explorations, and reflections from the Thought section, "
    "systematically present the final solution that you deem correct. The solution should remain a "
    "logical, accurate, concise expression style and detail necessary steps needed to reach the "
    "conclusion, formatted as follows: <|begin_of_solution|> {final formatted, precise, and clear "
    "solution} <|end_of_solution|> Now, try to solve the following question through the above guidelines:"
)
STRATOS_MATH = "Return your final response within \\boxed{}. "


def _chat(problem: str, thought: str, solution: str) -> dict:
    return {
        "system": SKY_T1_SYSTEM,
        "conversations": [
            {"from": "user", "value": STRATOS_MATH + problem},
            {
                "from": "assistant",
                "value": f"<|begin_of_thought|>\n\n{thought}\n\n<|end_of_thought|>\n\n"
                f"<|begin_of_solution|>\n\n{solution}\n\n<|end_of_solution|>",
            },
        ],
    }


# OpenThoughts-114k / Bespoke-Stratos-17k: no gold answer column
OPENTHOUGHTS = [
    _chat(
        "What is the value of $3^3 - 3^2$?",
        "Okay, let's see. I need to compute three cubed minus three squared. Three cubed is 3 times 3 "
        "times 3, which is 27.\n\nThree squared is 3 times 3, which is 9.\n\nSubtracting, 27 minus 9 is "
        "18. Let me make sure I did not mix up the exponents: the cube comes first and is the larger "
        "term, so the difference is positive, and 18 is the result.",
        "We have $3^3 = 27$ and $3^2 = 9$, so $3^3 - 3^2 = 27 - 9 = \\boxed{18}$.",
    ),
    _chat(
        "How many positive divisors does $36$ have?",
        "Alright, the prime factorization of 36 is 2 squared times 3 squared.\n\nThe number of divisors "
        "of a number with factorization p^a q^b is (a + 1)(b + 1), here (2 + 1)(2 + 1) = 9.\n\nListing "
        "them to confirm: 1, 2, 3, 4, 6, 9, 12, 18, 36. That is nine divisors, consistent with the formula.",
        "Since $36 = 2^2 \\cdot 3^2$, it has $(2+1)(2+1) = \\boxed{9}$ positive divisors.",
    ),
    _chat(
        "Simplify $\\frac{18}{24}$.",
        "First, find the greatest common divisor of 18 and 24. The divisors of 18 are 1, 2, 3, 6, 9, 18; "
        "those of 24 are 1, 2, 3, 4, 6, 8, 12, 24.\n\nThe largest shared one is 6. Dividing the numerator "
        "and the denominator by 6 gives 3 over 4.\n\nThree and four are coprime, so the fraction is fully "
        "reduced now.",
        "Dividing numerator and denominator by $\\gcd(18, 24) = 6$: $\\frac{18}{24} = \\boxed{\\frac{3}{4}}$.",
    ),
]

# plain problem / answer / completion
PLAIN = [
    {
        "problem": "What is $\\sqrt{144} - 5$?",
        "answer": "7",
        "completion": "<think>\nThe square root of 144 is 12, because 12 times 12 equals 144. Subtracting "
        "5 from 12 leaves 7. There is no ambiguity about the sign since the radical symbol denotes the "
        "principal, non-negative root, so the expression evaluates to a single number, seven, and I "
        "have double-checked the multiplication table entry for twelve.\n</think>\n\n"
        "$\\sqrt{144} - 5 = 12 - 5 = \\boxed{7}$",
    },
    {
        "problem": "What is $\\sqrt{144} - 5$?",
        "answer": "7",
        "completion": "<think>\nI recall that the square root of 144 might be 11 (confusing it with 121 "
        "for a moment), and taking away five from eleven would leave six. I will go with that value and "
        "not check whether eleven squared really gives one hundred forty-four, even though that would "
        "have been a cheap and useful verification step here.\n</think>\n\nThe result is $\\boxed{6}$.",
    },
    {
        "problem": "Find the sum of the interior angles of a hexagon, in degrees.",
        "answer": "720",
        "completion": "<think>\nThe interior angles of an n-sided polygon add up to (n - 2) times 180 "
        "degrees, since the polygon can be cut into n - 2 triangles from one vertex. A hexagon has six "
        "sides, so that is 4 times 180, which equals 720 degrees. A regular hexagon has angles of 120 "
        "degrees each, and six of those also make 720.\n</think>\n\nThe sum is $\\boxed{720}$ degrees.",
    },
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _recipe(tmp_path, body: str):
    path = tmp_path / "recipe.yaml"
    path.write_text("filter:\n  workers: 1\n  verify:\n    math: {workers: 1}\n" + body)
    return path


def _filter(source, out, recipe=None):
    args = [*DISTILL, "filter", str(source), "-o", str(out)]
    if recipe is not None:
        args += ["--recipe", str(recipe)]
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def _rows(folder):
    return [r for p in sorted((folder / "data").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def _ok(result, out):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return _rows(out / "sft"), _rows(out / "rejects"), json.loads((out / "report.json").read_text())


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_openr1_math_rows_one_trace_per_generation(tmp_path, fmt):
    """Each element of `generations` is a trace (its `finish_reasons` element beside it); `id: uuid`
    names the problem, so it becomes the prompt id; the golds are LaTeX and math verification runs."""
    if fmt == "parquet":
        source = tmp_path / "train-00000-of-00001.parquet"
        pq.write_table(pa.Table.from_pylist(OPENR1), source)
    else:
        source = _jsonl(tmp_path / "openr1.jsonl", OPENR1)
    recipe = _recipe(tmp_path, "  input:\n    columns: {id: uuid}\n")
    kept, rejected, report = _ok(_filter(source, tmp_path / "out", recipe), tmp_path / "out")
    assert len(kept) + len(rejected) == 6 and report["rows"] == 6
    assert len(kept) == 3  # one passing sample per problem (select.max_per_prompt 1)
    assert {r["prompt_id"] for r in kept} == {r["uuid"] for r in OPENR1}
    by = {(r["prompt_id"], r["sample_index"]): r for r in kept + rejected}
    first, wrong, cut = (OPENR1[0]["uuid"], 0), (OPENR1[1]["uuid"], 1), (OPENR1[2]["uuid"], 0)
    assert by[wrong]["verdict"] == "fail" and by[wrong]["reject_stage"] == "verify"
    assert by[cut]["finish_reason"] == "length" and by[cut]["content"] is None
    assert by[cut]["reject_stage"] in ("verify", "readability")
    assert by[first]["finish_reason"] is None  # finish_reasons was null: unknown
    assert by[(OPENR1[1]["uuid"], 0)]["finish_reason"] == "stop"
    row = by[(OPENR1[1]["uuid"], 0)]
    assert row["verdict"] == "pass" and row["answer"] == "4" and row["domain"] == "math"
    assert row["prompt"] == OPENR1[1]["problem"] + "\n" + INSTRUCTION
    assert row["reasoning"].startswith("I need to isolate x") and row["content"].endswith("\\boxed{4}$.")
    assert row["id"] == "s-" + stable_hash(row["prompt_id"], 0, OPENR1[1]["generations"][0])
    derived = report["derived"]
    for name in ("id", "prompt_id", "sample_index", "prompt", "reasoning", "content", "teacher"):
        assert derived[name] == 6, (name, derived)
    assert "finish_reason" not in derived and "problem" not in derived and "answer" not in derived
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Derived fields" in md and "prompt 6" in md
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["identity"]["config"]["input"] == {"columns": {"id": "uuid"}}


def test_openr1_parquet_and_jsonl_give_the_same_sft_rows(tmp_path):
    parquet = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist(OPENR1), parquet)
    jsonl = _jsonl(tmp_path / "a.jsonl", OPENR1)
    recipe = _recipe(tmp_path, "  select: {max_per_prompt: all}\n")
    outputs = []
    for source, out in ((parquet, tmp_path / "p"), (jsonl, tmp_path / "j")):
        kept, rejected, _ = _ok(_filter(source, out, recipe), out)
        outputs.append(
            (
                sorted((r["id"], r["verdict"], json.dumps(r["messages"])) for r in kept),
                sorted((r["id"], r["reject_stage"], r["reject_reason"]) for r in rejected),
            )
        )
    assert outputs[0] == outputs[1] and len(outputs[0][0]) == 4  # every passing, readable sample


def test_openthoughts_chats_without_golds(tmp_path):
    """The user turn is the prompt (and the problem), the assistant turn the completion; the
    thought/solution markers become reasoning and content. No gold answer: with the default recipe
    every math row is `error: no gold answer` and the report says why; mapped to no verifier, the
    rows are kept unverified."""
    source = _jsonl(tmp_path / "openthoughts.jsonl", OPENTHOUGHTS)
    kept, rejected, report = _ok(_filter(source, tmp_path / "gold", _recipe(tmp_path, "")), tmp_path / "gold")
    assert not kept and len(rejected) == 3
    assert {(r["reject_stage"], r["reject_reason"]) for r in rejected} == {
        ("verify", "error: no gold answer")
    }
    assert report["reasons"] == {"verify: error: no gold answer": 3}
    assert report["no_answer_column"] == 3
    md = (tmp_path / "gold" / "report.md").read_text()
    assert "No gold answer: 3 rows" in md and "verify.domains: {math: none}" in md

    recipe = _recipe(tmp_path, "  verify:\n    domains: {math: none}\n")
    kept, rejected, report = _ok(_filter(source, tmp_path / "none", recipe), tmp_path / "none")
    assert len(kept) == 3 and not rejected
    assert all(r["verdict"] is None for r in kept)
    row = next(r for r in kept if "divisors" in r["problem"])
    user_turn = OPENTHOUGHTS[1]["conversations"][0]["value"]
    assert row["prompt"] == row["problem"] == user_turn
    assert row["reasoning"].startswith("Alright, the prime factorization")
    assert (
        row["content"] == "Since $36 = 2^2 \\cdot 3^2$, it has $(2+1)(2+1) = \\boxed{9}$ positive divisors."
    )
    assert row["messages"][0] == {"role": "user", "content": user_turn}
    assert row["messages"][1]["content"] == f"<think>\n{row['reasoning']}\n</think>\n\n{row['content']}"
    assert "<|" not in row["messages"][1]["content"]
    assert report["derived"]["problem"] == report["derived"]["prompt"] == 3
    assert "No gold answer: 3 rows" in (tmp_path / "none" / "report.md").read_text()


def test_plain_problem_answer_completion_jsonl(tmp_path):
    """A recipe may still give the input as a path alone (the older form): the command's INPUT wins."""
    source = _jsonl(tmp_path / "plain.jsonl", PLAIN)
    recipe = _recipe(tmp_path, f"  input: {tmp_path / 'elsewhere.jsonl'}\n")
    kept, rejected, report = _ok(_filter(source, tmp_path / "out", recipe), tmp_path / "out")
    assert sorted(r["answer"] for r in kept) == ["7", "720"]
    assert [(r["reject_stage"], r["reject_reason"]) for r in rejected] == [("verify", "fail: wrong answer")]
    assert sorted(r["sample_index"] for r in kept + rejected) == [0, 0, 1]  # two samples of one problem
    assert len({r["prompt_id"] for r in kept + rejected}) == 2
    assert all(r["prompt_id"] == prompt_id_for(r["problem"]) for r in kept)
    assert report["derived"] == {
        "id": 3,
        "prompt_id": 3,
        "sample_index": 3,
        "domain": 3,
        "prompt": 3,
        "reasoning": 3,
        "content": 3,
        "finish_reason": 3,
        "teacher": 3,
        "sampling": 3,
    }


def test_trace_jsonl_without_prompt_column(tmp_path):
    """Every trace column but `prompt`: it used to end in a pyarrow traceback after the first pass
    ("Column 'prompt' is declared non-nullable but contains nulls"); now the prompt is derived."""
    rows = []
    for k, plain in enumerate(PLAIN):
        split = split_completion(plain["completion"])
        pid = prompt_id_for(plain["problem"])
        rows.append(
            {
                "id": f"t{k}",
                "prompt_id": pid,
                "sample_index": k,
                "problem": plain["problem"],
                "answer": plain["answer"],
                "tests": None,
                "domain": "math",
                "source": "test",
                "reasoning": split.reasoning,
                "content": split.content,
                "completion": plain["completion"],
                "finish_reason": "stop",
                "prompt_tokens": 40,
                "completion_tokens": 120,
                "teacher": "deepseek-r1",
                "sampling": "{}",
            }
        )
    source = _jsonl(tmp_path / "traces.jsonl", rows)
    kept, rejected, report = _ok(_filter(source, tmp_path / "out", _recipe(tmp_path, "")), tmp_path / "out")
    assert sorted(r["id"] for r in kept) == ["t0", "t2"] and [r["id"] for r in rejected] == ["t1"]
    assert report["derived"] == {"prompt": 3}
    assert kept[0]["prompt"] == kept[0]["problem"] + "\n" + INSTRUCTION
    assert "no_answer_column" not in report


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"problem": "What is $1 + 1$?", "answer": "2", "solution": "$1 + 1 = \\boxed{2}$"}],
            "no completion column",
        ),
        (
            [{"answer": "2", "completion": "<think>\nOne plus one.\n</think>\n\n\\boxed{2}"}],
            "no problem column",
        ),
    ],
    ids=["no-completion", "no-problem"],
)
def test_a_missing_required_column_is_a_one_line_error(tmp_path, rows, message):
    result = _filter(_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0] and "docs/data.md" in errors[0], result.stderr


def test_a_mapped_column_missing_from_the_file_is_a_user_error(tmp_path):
    path = _jsonl(tmp_path / "plain.jsonl", PLAIN)
    with pytest.raises(
        UserError, match=r"no column 'generations' \(input.columns.completion\).*docs/data.md"
    ):
        read_trace_file(path, FilterInput(columns={"completion": "generations"}))
    with pytest.raises(UserError, match=r"no column 'question' \(input.columns.problem\)"):
        read_trace_file(path, FilterInput(columns={"problem": "question"}))


def test_list_rows_chat_rows_and_bad_rows_are_counted(tmp_path):
    """An empty list of generations, a chat without an assistant turn, a null generation: rejects
    with their line; a renamed column is read; the reads are deterministic."""
    rows = [
        {"question": "Q1", "generations": ["<think>\na\n</think>\n\n\\boxed{1}", None], "answer": "1"},
        {"question": "Q2", "generations": [], "answer": "2"},
    ]
    path = _jsonl(tmp_path / "lists.jsonl", rows)
    spec = FilterInput(columns={"problem": "question"})
    read = read_trace_file(path, spec)
    assert read.table.num_rows == 1 and not read.native
    assert [(r["line"], r["reason"]) for r in read.rejects] == [
        (1, "missing completion"),
        (2, "missing completion: no element in 'generations'"),
    ]
    assert read.table.column("problem").to_pylist() == ["Q1"]
    assert read_trace_file(path, spec).table.equals(read.table)
    chats = [
        {"conversations": [{"from": "user", "value": "Q"}]},
        {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]},
        {"conversations": "not a chat"},
        {"conversations": [{"role": "user", "content": "Q3"}, {"role": "assistant", "content": "B"}]},
    ]
    read = read_trace_file(_jsonl(tmp_path / "chats.jsonl", chats))
    assert [r["reason"] for r in read.rejects] == [
        "missing completion: no assistant turn in 'conversations'",
        "missing completion: 'conversations' is not a list of turns",
    ]
    assert read.table.column("completion").to_pylist() == ["A", "B"]
    assert read.table.column("reasoning").to_pylist() == [None, None]  # no tags: all answer
    assert read.table.column("content").to_pylist() == ["A", "B"]


def test_split_completion():
    r1 = split_completion("<think>\nwork\n</think>\n\nso \\boxed{2}")
    assert (r1.reasoning, r1.content) == ("work", "so \\boxed{2}")
    hidden = split_completion("work\n</think>\n\n\\boxed{2}")  # the template opened <think>
    assert (hidden.reasoning, hidden.content) == ("work", "\\boxed{2}")
    plain = split_completion("  The answer is \\boxed{2}.\n")
    assert (plain.reasoning, plain.content) == (None, "The answer is \\boxed{2}.")
    sky = split_completion(
        "<|begin_of_thought|>\n\nstep 1\n\nstep 2\n\n<|end_of_thought|>\n\n"
        "<|begin_of_solution|>\n\n\\boxed{2}\n\n<|end_of_solution|>"
    )
    assert (sky.reasoning, sky.content) == ("step 1\n\nstep 2", "\\boxed{2}")
    cut = split_completion("<|begin_of_thought|>\n\nstep 1 and then")
    assert (cut.reasoning, cut.content) == ("step 1 and then", None)


def test_the_input_section_validates_and_leaves_trace_files_alone(tmp_path):
    """The path alone (older recipes, `distill run`'s resolved recipes) still validates, dumps as the
    path, and adds nothing to the output's identity: a rerun into an older folder still matches."""
    cfg = load_stage_config("filter", None, {"input": "runs/x/traces"})
    assert cfg.input.path == "runs/x/traces" and cfg.input.mapping() == {}
    assert cfg.model_dump(mode="json")["input"] == "runs/x/traces"
    (tmp_path / "a.jsonl").write_text("")
    assert "input" not in identity_of(cfg, [tmp_path / "a.jsonl"])["config"]
    mapped = load_stage_config(
        "filter",
        None,
        {"input": {"path": "x", "columns": {"completion": "generations"}, "domain": "science"}},
    )
    assert mapped.input.mapping() == {"columns": {"completion": "generations"}, "domain": "science"}
    assert identity_of(mapped, [tmp_path / "a.jsonl"])["config"]["input"] == mapped.input.mapping()
    with pytest.raises(ConfigError, match=r"unknown key 'input\.columns\.generations'"):
        load_stage_config("filter", None, {"input": {"columns": {"generations": "completion"}}})


C = "<think>\nOne plus one is two.\n</think>\n\n\\boxed{2}"


@pytest.mark.parametrize(
    "row",
    [
        {"problem": "p", "completion": {"text": C}},
        {"problem": "p", "completion": True},
        {"problem": "p", "completion": C, "sample_index": "0"},
        {"problem": 5, "completion": C},
        {"problem": "p", "completion": C, "domain": 5},
        {"problem": "p", "completion": C, "sample_index": 2**40},
        {"problem": "p", "completion": C, "tests": 3},
        {"problem": "p", "completion": C, "sampling": [1]},
        {"problem": "p", "completion": C, "reasoning": 5},
        {"problem": None, "prompt": None, "completion": C},
        {"problem": "p", "completion": C, "id": None, "prompt_id": ""},
        {"problem": "p", "generations": [[C]]},
        {"problem": "p", "generations": C, "finish_reasons": ["stop", "length"]},
        {"conversations": [{"from": "user", "value": ["x"]}, {"from": "assistant", "value": C}]},
        {"conversations": [{"from": "user"}, {"from": "assistant", "value": C}]},
        {"conversations": [1, 2]},
        {"conversations": None},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None}]},
    ],
)
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_odd_rows_are_rejects_or_one_line_errors(tmp_path, row, fmt):
    """A value of the wrong type stops the file with a one-line error naming the field; a row that
    holds no usable trace is a reject with its reason. Nothing else escapes."""
    path = tmp_path / f"odd.{fmt}"
    if fmt == "jsonl":
        _jsonl(path, [row])
    else:
        try:
            pq.write_table(pa.Table.from_pylist([row]), path)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pytest.skip("not representable in Parquet")
    try:
        read = read_trace_file(path)
    except UserError as exc:
        assert "\n" not in str(exc) and "field '" in str(exc) and "docs/data.md" in str(exc)
        return
    assert read.table.num_rows + len(read.rejects) >= 1
    assert all(r["reason"].startswith("missing ") for r in read.rejects)


def test_a_value_of_the_wrong_type_is_a_one_line_error_on_the_command_line(tmp_path):
    rows = [{"problem": "What is $1 + 1$?", "answer": "2", "completion": C, "sample_index": "first"}]
    result = _filter(_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "field 'sample_index'" in errors[0], result.stderr


def test_the_report_counts_format_misses_apart_and_lists_unparsable_golds(tmp_path):
    """Bare LaTeX golds verify; a reply without a box is `no boxed answer`, not a wrong answer;
    a gold math-verify cannot read even boxed is listed in the report with its row count."""
    think = "<think>\nLet me work it out.\n</think>\n\n"
    rows = [
        {"problem": "Write 207/64 in lowest terms.", "answer": "\\dfrac{207}{64}",
         "completion": think + "So the answer is $\\boxed{\\frac{207}{64}}$."},
        {"problem": "Write 207/64 in lowest terms.", "answer": "\\dfrac{207}{64}",
         "completion": think + "The answer is 207/64."},
        {"problem": "Solve for the pair.", "answer": "(6,1)", "completion": think + "\\boxed{(1, 6)}"},
        {"problem": "A broken gold.", "answer": "}{", "completion": think + "\\boxed{1}"},
        {"problem": "A broken gold.", "answer": "}{", "completion": think + "\\boxed{2}"},
    ]  # fmt: skip
    source = _jsonl(tmp_path / "traces.jsonl", rows)
    out = tmp_path / "out"
    recipe = _recipe(tmp_path, "  select: {max_per_prompt: all}\n  readability: {min_tokens: 1}\n")
    sft, rejects, report = _ok(_filter(source, out, recipe), out)
    assert len(sft) == 1 and sft[0]["verdict"] == "pass"  # `\dfrac` gold, wrapped, against `\frac`
    reasons = report["reasons"]
    assert reasons["verify: fail: no boxed answer"] == 1
    assert reasons["verify: fail: wrong answer"] == 1
    assert reasons["verify: error: unparsable gold"] == 2
    assert report["unparsable_golds"] == {"}{": 2}
    assert "Unparsable golds: 1 gold answers" in (out / "report.md").read_text()
    assert len(rejects) == 4
