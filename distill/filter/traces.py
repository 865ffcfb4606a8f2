"""Reading trace rows for `distill filter`: a `distill generate` folder, or trace Parquet/JSONL files,
also trace sets made by other tools (docs/data.md, "Trace sets made elsewhere").

Each input file is one unit of work (and of resume). Rows that are not usable traces (no id, no
completion, malformed JSON) are returned as rejects with their reason, never dropped.

A file in the trace schema is read as it is. Other shapes are mapped to it (`FilterInput`):
columns renamed (`input.columns`), a column of lists (OpenR1-Math's `generations`) made one row
per element, a chat (OpenThoughts' `conversations`) split into prompt and completion, and the
trace fields the file lacks derived (the prompt from the problem and the domain's template, the
reasoning and the answer from the completion, ids by hash, ...), each counted for the report.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from distill.errors import UserError
from distill.filter.config import FilterInput
from distill.inputs import JSONL_SUFFIXES, iter_jsonl
from distill.schema import TRACE_SCHEMA, conform, prompt_id_for, stable_hash, to_table
from distill.trace import Split, split_reasoning

REQUIRED = ("id", "prompt_id", "completion")
FIELDS = tuple(f.name for f in TRACE_SCHEMA)
NOT_NULL = tuple(f.name for f in TRACE_SCHEMA if not f.nullable)
# the input columns tried for a field that `input.columns` does not map, after its own name
ALIASES = {"completion": ("generations",), "finish_reason": ("finish_reasons",)}
CHATS = ("conversations", "messages")  # tried for a chat when there is no completion column
USER_ROLES, ASSISTANT_ROLES = ("user", "human"), ("assistant", "gpt")
UNKNOWN_TEACHER = "unknown"
# the reasoning markers of Sky-T1 / Bespoke-Stratos / OpenThoughts completions
BEGIN_THOUGHT, END_THOUGHT = "<|begin_of_thought|>", "<|end_of_thought|>"
BEGIN_SOLUTION, END_SOLUTION = "<|begin_of_solution|>", "<|end_of_solution|>"
DOCS = "see docs/data.md"


def list_trace_files(path: str | Path) -> list[Path]:
    path = Path(path)
    if not path.exists():
        raise UserError(f"input not found: {path}")
    if path.is_file():
        return [path]
    data = path / "data"
    folder = data if data.is_dir() else path
    files = sorted(p for p in folder.iterdir() if p.suffix == ".parquet" or p.name.endswith(JSONL_SUFFIXES))
    if not files:
        raise UserError(f"{path}: no trace files (.parquet or .jsonl) found")
    if (path / "manifests").is_dir() and not (path / "manifest.json").exists():
        raise UserError(
            f"{path}: this generate folder is not complete (no manifest.json): finish `distill generate` first"
        )
    return files


@dataclass
class TraceRead:
    """One input file read: its usable rows conformed to TRACE_SCHEMA, the rejects (dicts with file,
    line, id and reason), and what the mapping did."""

    table: pa.Table
    rejects: list[dict]
    derived: dict[str, int] = field(default_factory=dict)  # trace field -> rows it was filled in on
    native: bool = True  # the rows are the file's rows as they are (nothing renamed, split or derived)
    no_answer_column: int = 0  # rows of a file without a gold-answer column


def split_completion(text: str) -> Split:
    """A completion's reasoning and final answer: R1's `<think>` tags (`split_reasoning`; a text
    without them is all answer), or the `<|begin_of_thought|>` / `<|begin_of_solution|>` markers of
    Sky-T1-style sets (OpenThoughts, Bespoke-Stratos), whose solution markers are dropped."""
    if BEGIN_THOUGHT not in text and END_THOUGHT not in text:
        return split_reasoning(text, think_opened=False)
    body = text.partition(BEGIN_THOUGHT)[2] if BEGIN_THOUGHT in text else text
    reasoning, closed, rest = body.partition(END_THOUGHT)
    if not closed:  # cut off inside the reasoning
        return Split(reasoning.strip(), None)
    if BEGIN_SOLUTION in rest:
        rest = rest.partition(BEGIN_SOLUTION)[2]
    return Split(reasoning.strip(), rest.partition(END_SOLUTION)[0].strip())


@dataclass(frozen=True)
class _Layout:
    """Where each trace field comes from in one file."""

    columns: dict[str, str | None]  # trace field -> input column (None: not in the file)
    chat: str | None  # the chat column, when there is no completion column

    @property
    def native(self) -> bool:
        return self.chat is None and all(c in (None, f) for f, c in self.columns.items())


def _layout(path: Path, names: set[str], spec: FilterInput) -> _Layout:
    columns: dict[str, str | None] = {}
    for name in FIELDS:
        mapped = getattr(spec.columns, name, None)  # generate-only fields (adaptive) are not mapped
        if mapped is not None:
            if mapped not in names:
                raise UserError(f"{path}: no column {mapped!r} (input.columns.{name}); {DOCS}")
            columns[name] = mapped
        else:
            columns[name] = next((c for c in (name, *ALIASES.get(name, ())) if c in names), None)
    chat = None
    if columns["completion"] is None:
        if spec.conversations is not None:
            if spec.conversations not in names:
                raise UserError(f"{path}: no column {spec.conversations!r} (input.conversations); {DOCS}")
            chat = spec.conversations
        else:
            chat = next((c for c in CHATS if c in names), None)
        if chat is None:
            tried = ", ".join(repr(c) for c in ("completion", *ALIASES["completion"]))
            raise UserError(
                f"{path}: no completion column ({tried}, nor a chat in 'conversations' or 'messages'): "
                f"name yours with input.columns.completion; {DOCS}"
            )
    if columns["problem"] is None and columns["prompt"] is None and chat is None:
        raise UserError(
            f"{path}: no problem column to derive the prompt from ('problem', nor 'prompt'): "
            f"name yours with input.columns.problem; {DOCS}"
        )
    return _Layout(columns, chat)


def _text(value: Any) -> str | None:
    """An id or an answer as text: numbers as written, JSON for anything else but a string."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _chat(value: Any, column: str) -> tuple[Any, Any] | str:
    """(the first user turn, the first assistant turn after it) of a chat, or a reject reason."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return f"missing completion: {column!r} is not a list of turns"
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        return f"missing completion: {column!r} is not a list of turns"
    user = assistant = None
    for turn in value:
        role = turn.get("from", turn.get("role"))
        text = turn.get("value", turn.get("content"))
        if role in USER_ROLES and user is None:
            user = text
        elif role in ASSISTANT_ROLES and user is not None:
            assistant = text
            break
    if user is None:
        return f"missing problem: no user turn in {column!r}"
    if assistant is None:
        return f"missing completion: no assistant turn in {column!r}"
    return user, assistant


_TEMPLATES = None


def _prompt_for(problem: str, domain: str) -> str:
    """The user turn `distill generate` would have sent: the domain's default template."""
    global _TEMPLATES
    from distill.prompts import PromptConfig, user_prompt

    if _TEMPLATES is None:
        _TEMPLATES = PromptConfig()
    if domain not in _TEMPLATES.templates:  # an unknown domain: rejected at input anyway
        return problem
    return user_prompt(problem, domain, _TEMPLATES)


class _Mapper:
    """Input records of one file -> trace rows, counting what it fills in."""

    def __init__(self, layout: _Layout, spec: FilterInput) -> None:
        self.layout, self.spec = layout, spec
        self.derived: Counter[str] = Counter()
        self.samples_of: Counter[str] = Counter()  # prompt id -> rows so far (sample_index by position)
        self.exploded = False

    def rows(self, rec: dict[str, Any]) -> list[dict[str, Any] | str]:
        """The trace rows of one record (several for a list of completions), or reject reasons."""
        cols, spec = self.layout.columns, self.spec

        def get(name: str) -> Any:
            return rec.get(cols[name]) if cols[name] is not None else None

        user = None
        if self.layout.chat is None:
            raw = get("completion")
        else:
            turns = _chat(rec.get(self.layout.chat), self.layout.chat)
            if isinstance(turns, str):
                return [turns]
            user, raw = turns
        listed = isinstance(raw, list)
        if listed and not raw:
            return [f"missing completion: no element in {cols['completion'] or self.layout.chat!r}"]
        self.exploded = self.exploded or listed
        # fields of the whole record
        derived: set[str] = set()
        problem = get("problem")
        if problem is None:
            problem = user if user is not None else get("prompt")
            derived.add("problem")
        if problem is None:
            return ["missing problem"]
        domain = get("domain")
        if domain is None:
            domain = spec.domain
            derived.add("domain")
        prompt = get("prompt")
        if prompt is None:
            derived.add("prompt")
            prompt = user if user is not None else _prompt_for(str(problem), str(domain))
        teacher = get("teacher")
        if teacher is None:
            teacher = spec.teacher or UNKNOWN_TEACHER
            derived.add("teacher")
        sampling = get("sampling")
        if sampling is None:
            sampling = "{}"
            derived.add("sampling")
        elif isinstance(sampling, dict):
            sampling = json.dumps(sampling, ensure_ascii=False)
        source = get("source")
        if cols["source"] is None and spec.source is not None:
            source = spec.source
            derived.add("source")
        tests = get("tests")
        if isinstance(tests, (list, dict)):
            tests = json.dumps(tests)
        record_id = _text(get("id"))
        prompt_id = _text(get("prompt_id"))
        if cols["prompt_id"] is None:
            derived.add("prompt_id")
            # a record with a list of completions and one id: the id names the problem
            prompt_id = record_id if listed and record_id and not isinstance(get("id"), list) else None
            prompt_id = prompt_id or prompt_id_for(str(problem))
        base = {
            "prompt_id": prompt_id,
            "problem": problem,
            "answer": _text(get("answer")),
            "tests": tests,
            "domain": domain,
            "source": source,
            "prompt": prompt,
            "teacher": teacher,
            "sampling": sampling,
        }
        out: list[dict[str, Any] | str] = []
        for k, completion in enumerate(raw if listed else [raw]):
            out.append(self._sample(rec, base, derived, listed, k, completion))
        return out

    def _sample(
        self, rec: dict, base: dict, derived: set[str], listed: bool, k: int, completion: Any
    ) -> dict[str, Any] | str:
        cols = self.layout.columns
        own = set(derived)

        def get(name: str) -> Any:  # a list here is one value per sample (parallel to the completions)
            value = rec.get(cols[name]) if cols[name] is not None else None
            if isinstance(value, list):
                return value[k] if k < len(value) else None
            return value

        if completion is not None and not isinstance(completion, str):
            return f"missing completion: not text ({type(completion).__name__})"
        row = {**base, "completion": completion}
        for name in ("finish_reason", "prompt_tokens", "completion_tokens", "reasoning", "content"):
            row[name] = get(name)
        if cols["finish_reason"] is None:
            own.add("finish_reason")  # unknown
        if (cols["reasoning"] is None or cols["content"] is None) and completion:
            split = split_completion(completion)
            for name in ("reasoning", "content"):
                if cols[name] is None:
                    row[name] = getattr(split, name)
                    own.add(name)
        index = get("sample_index")
        if index is None:
            index = k if listed else self.samples_of[base["prompt_id"]]
            own.add("sample_index")
        self.samples_of[base["prompt_id"]] += 1
        row["sample_index"] = index
        rid = get("id")
        if cols["id"] is None or (listed and not isinstance(rec.get(cols["id"]), list)):
            rid = "s-" + stable_hash(base["prompt_id"], index, completion)
            own.add("id")
        row["id"] = _text(rid)
        bad = next((c for c in REQUIRED if not row.get(c)), None)
        if bad is None:
            bad = next((c for c in NOT_NULL if row.get(c) is None), None)
        if bad:
            return f"missing {bad}"
        self.derived.update(own)
        return row


_BAD_VALUE = (pa.ArrowException, TypeError, ValueError, OverflowError)


def _bad_field(rows: list[dict[str, Any]]) -> str | None:
    """The first trace field whose values Arrow cannot hold as the schema's type."""
    for f in TRACE_SCHEMA:
        try:
            pa.array([r.get(f.name) for r in rows], f.type)
        except _BAD_VALUE:
            return f.name
    return None


def read_trace_file(path: Path, spec: FilterInput | None = None) -> TraceRead:
    """The usable rows of one input file as TRACE_SCHEMA, its rejects, and what was derived."""
    spec = spec or FilterInput()
    rejects: list[dict] = []
    if path.suffix == ".parquet":
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise UserError(f"{path}: not a Parquet file ({exc})") from None
        names = set(table.column_names)
        rows = table.to_pylist()
        del table
        lines = range(1, len(rows) + 1)
    else:
        rows, lines = [], []
        for line, rec in iter_jsonl(path):
            if isinstance(rec, str):
                rejects.append({"file": str(path), "line": line, "reason": rec})
            else:
                rows.append(rec)
                lines.append(line)
        names = {key for row in rows for key in row}
    if not rows:
        return TraceRead(to_table([], TRACE_SCHEMA), rejects)
    layout = _layout(path, names, spec)
    mapper = _Mapper(layout, spec)
    good = []
    id_column = layout.columns["id"]
    # a trace file's row with every non-null field set is taken as it is (the mapper would give the
    # same row, at a third more of the reading time)
    as_is = layout.native and not (layout.columns["source"] is None and spec.source is not None)
    for line, rec in zip(lines, rows, strict=True):
        if as_is and isinstance(rec.get("completion"), str) and all(rec.get(f) is not None for f in NOT_NULL):
            bad = next((c for c in REQUIRED if not rec[c]), None)
            if bad:
                rejects.append(
                    {"file": str(path), "line": line, "id": _text(rec["id"]), "reason": f"missing {bad}"}
                )
                continue
            for name in ("id", "prompt_id", "answer"):
                if not isinstance(rec.get(name), (str, type(None))):
                    rec[name] = _text(rec[name])
            if isinstance(rec.get("tests"), (list, dict)):
                rec["tests"] = json.dumps(rec["tests"])
            good.append(rec)
            continue
        for row in mapper.rows(rec):
            if isinstance(row, str):
                rid = _text(rec.get(id_column)) if id_column else None
                rejects.append({"file": str(path), "line": line, "id": rid, "reason": row})
            else:
                good.append(row)
    try:
        table = to_table(good, TRACE_SCHEMA)
    except _BAD_VALUE as exc:  # a value of a wrong type
        name = _bad_field(good)
        column = layout.columns.get(name) if name else None
        where = f"field {name!r}" if name else "rows"
        where += f" (column {column!r})" if column else ""
        raise UserError(f"{path}: {where} does not match the trace schema ({exc}); {DOCS}") from None
    derived = {name: mapper.derived[name] for name in FIELDS if mapper.derived[name]}
    return TraceRead(
        conform(table, TRACE_SCHEMA),
        rejects,
        derived,
        native=layout.native and not derived and not mapper.exploded,
        no_answer_column=len(good) if layout.columns["answer"] is None else 0,
    )
