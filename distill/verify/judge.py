"""The LLM judge for domains without a rule-based verifier (science, general).

The judge sees the problem, the reference answer and the candidate's FINAL answer (the row's
`content`, the text after `</think>`; never the chain of thought) and must answer with exactly one
word of `VOCABULARY`. Its output is parsed strictly: only the part after `</think>` (reasoning
judges), whitespace and surrounding punctuation/markdown (`**`, `.`) stripped, then an exact,
case-insensitive match of one word. Anything else is `error: judge: unparsable output: ...` and a
failed request is `error: judge: <error>` - an error is never guessed into a pass or a fail.

A row without a final answer (content null or blank: the trace was cut off) is `fail: no final
answer`, as in the math verifier, and the judge is not asked; a row without a reference answer is
`error: judge: no reference answer`.
"""

from __future__ import annotations

from collections.abc import Iterable
from threading import Lock

from pydantic import Field, model_validator

from distill.config import StrictModel
from distill.engines.base import Engine, Request, Sample, SamplingParams
from distill.engines.config import EngineConfig
from distill.engines.factory import make_engine
from distill.trace import split_reasoning
from distill.verify.verdict import Verdict

JUDGE_PROMPT_VERSION = "judge-v1"
# Short on purpose: it must fit small judges (and be followed by them, as far as they can).
JUDGE_TEMPLATE = (
    "Problem:\n{problem}\n\n"
    "Reference answer: {reference}\n"
    "Candidate answer: {answer}\n\n"
    "Is the candidate answer correct, i.e. does it match the reference answer? "
    "Reply with one word: CORRECT or INCORRECT."
)
VOCABULARY = {"CORRECT": "pass", "INCORRECT": "fail"}
_STRIP = " \t\r\n*_`'\".,;:!"  # whitespace, punctuation and markdown around the one word


class JudgeConfig(StrictModel):
    engine: EngineConfig = Field(
        default_factory=EngineConfig,
        description="The judge model: by default the built-in model on the local vllm backend.",
    )
    max_tokens: int = Field(
        8,
        ge=1,
        description="Tokens the judge may write: enough for one word. Raise it (e.g. to 4096) for a "
        "reasoning judge, which must close its </think> before the word.",
    )
    temperature: float = Field(0.0, ge=0, description="Judge sampling temperature (0: greedy).")
    think_prefill: bool = Field(
        False,
        description="Open the judge's turn with <think> (reasoning judges whose chat template doesn't).",
    )
    constrain: bool = Field(
        True,
        description="Constrain the judge's output to the vocabulary words (vLLM structured outputs; local "
        "engines and vLLM servers). Turn off for reasoning judges: it would block their <think> part, "
        "and for endpoints without structured outputs.",
    )
    prompt_version: str = Field(
        JUDGE_PROMPT_VERSION, description="Names the prompt; a custom `template` needs its own."
    )
    template: str = Field(
        JUDGE_TEMPLATE,
        description="The judge's user turn, with {problem}, {reference} and {answer}; it must ask for "
        "exactly one word, CORRECT or INCORRECT.",
    )

    @model_validator(mode="after")
    def _check_template(self) -> JudgeConfig:
        for name in ("problem", "reference", "answer"):
            if "{" + name + "}" not in self.template:
                raise ValueError(f"judge template has no {{{name}}} placeholder")
        try:
            self.template.format(problem="", reference="", answer="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"judge template does not format: {exc!r}") from None
        if self.template != JUDGE_TEMPLATE and self.prompt_version == JUDGE_PROMPT_VERSION:
            raise ValueError(
                f"a custom judge template needs its own prompt_version, not {JUDGE_PROMPT_VERSION}"
            )
        return self


def _blank(value: object) -> bool:
    return value is None or not str(value).strip()


def parse_judgment(text: str, think_opened: bool = False) -> Verdict:
    """The judge's raw output -> pass / fail on an exact vocabulary word, else error."""
    content = split_reasoning(text, think_opened).content
    shown = text if content is None else content  # the reasoning never closed: show the raw text
    word = (content or "").strip(_STRIP).upper()
    if word in VOCABULARY:
        return Verdict(VOCABULARY[word], f"judge: {word}")  # type: ignore[arg-type]
    return Verdict.errored(f"judge: unparsable output: {shown.strip()[:80]!r}")


class LLMJudge:
    """Judges rows (`problem`, `answer`, `content`) with an LLM; the engine starts on first use.

    An injected `engine` stays its owner's (shared, closed by the owner); `close()` closes only ours.
    """

    def __init__(self, cfg: JudgeConfig | None = None, engine: Engine | None = None):
        self.config = cfg or JudgeConfig()
        self._engine = engine
        self._owned = engine is None
        self._lock = Lock()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.config.engine, think_prefill=self.config.think_prefill)
        return self._engine

    def prompt(self, row: dict) -> str:
        """The judge's user turn for a row: problem, reference and final answer (no reasoning)."""
        return self.config.template.format(
            problem=str(row.get("problem") or "").strip(),
            reference=str(row["answer"]).strip(),
            answer=str(row["content"]).strip(),
        )

    def verify_many(self, rows: Iterable[dict]) -> list[Verdict]:
        """One verdict per row, in order; the rows needing the judge go to the engine as one stream."""
        with self._lock:
            verdicts: list[Verdict | None] = []
            asks: list[Request] = []
            for row in rows:
                verdicts.append(None)
                if _blank(row.get("content")):
                    verdicts[-1] = Verdict.failed("no final answer")
                elif _blank(row.get("answer")):
                    verdicts[-1] = Verdict.errored("judge: no reference answer")
                else:
                    asks.append(Request(len(verdicts) - 1, [{"role": "user", "content": self.prompt(row)}]))
            if asks:
                params = SamplingParams(
                    n=1,
                    temperature=self.config.temperature,
                    top_p=1.0,
                    max_tokens=self.config.max_tokens,
                    choices=tuple(VOCABULARY) if self.config.constrain else None,
                )
                for result in self.engine.stream(iter(asks), params):
                    verdicts[result.key] = _verdict(result.error, result.samples)
            return [v or Verdict.errored("judge: no result") for v in verdicts]

    def close(self) -> None:
        if self._owned and self._engine is not None:
            self._engine.close()
            self._engine = None

    def __enter__(self) -> LLMJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _verdict(error: str | None, samples: list[Sample]) -> Verdict:
    if error is not None:
        return Verdict.errored(f"judge: {error}")
    if not samples:
        return Verdict.errored("judge: no sample returned")
    return parse_judgment(samples[0].text, samples[0].think_opened)
