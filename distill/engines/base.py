"""One small interface in front of every way of sampling a model.

An engine pulls `Request`s lazily from an iterator (so it can keep its batch full across shard
boundaries) and yields a `Result` per request as each completes, in completion order. The
iterator may yield None: "no request is ready yet, ask again later" (adaptive sampling's next
rounds wait on verification); the engine then goes on with what it has in flight and asks again,
and the iterator never blocks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SamplingParams:
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    top_k: int | None = None
    seed: int = 0
    ignore_eos: bool = False
    choices: tuple[str, ...] | None = None  # constrain the output to exactly one of these strings

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            **({"ignore_eos": True} if self.ignore_eos else {}),
            **({"choices": list(self.choices)} if self.choices else {}),
        }


@dataclass(slots=True)
class Request:
    key: Any  # opaque to the engine, handed back with the result
    messages: list[dict[str, str]]


@dataclass(slots=True)
class Sample:
    text: str  # raw completion (with the reasoning re-wrapped in tags when the API split it off)
    finish_reason: str | None
    completion_tokens: int | None
    think_opened: bool  # the text starts inside <think> (prefilled prompt)


@dataclass(slots=True)
class Result:
    key: Any
    samples: list[Sample] = field(default_factory=list)
    prompt_tokens: int | None = None
    prompt_cached_tokens: int | None = None  # of prompt_tokens, served from the prefix cache
    error: str | None = None  # the request failed: nothing of it may be written as a sample
    permanent: bool = False  # the failure is the prompt's (e.g. too long), not a transient one


class Engine(ABC):
    """A model to sample from. `teacher` names it in trace rows; `revision` fingerprints it."""

    teacher: str
    revision: str | None = None
    accelerators: int | None = None  # GPUs this engine holds (0 on the CPU; None: remote, unknown)

    @abstractmethod
    def stream(self, requests: Iterable[Request], params: SamplingParams) -> Iterator[Result]:
        """Yield one Result per request, as they complete."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
