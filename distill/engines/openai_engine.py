"""Any OpenAI-compatible chat endpoint: a `vllm serve` fleet, SGLang, a hosted API.

Requests run asynchronously with bounded concurrency (an asyncio loop in a background thread);
transient errors (connection errors, timeouts, 408/409/425/429/5xx) are retried with exponential
backoff and jitter. `reasoning_content` / `reasoning` fields are understood. The API key comes from
an environment variable and is never logged. With `think_prefill`, the assistant turn is opened
with `<think>\\n` through vLLM's `continue_final_message` extension (for vLLM servers only).
"""

from __future__ import annotations

import asyncio
import os
import queue
import random
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

from distill.engines.base import Engine, Request, Result, Sample, SamplingParams
from distill.engines.config import EngineConfig
from distill.errors import UserError
from distill.trace import THINK_CLOSE, THINK_OPEN

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_DONE = object()
_END = object()


class RequestFailed(Exception):
    pass


class OpenAIEngine(Engine):
    def __init__(self, cfg: EngineConfig, think_prefill: bool = False):
        if not cfg.base_url:
            raise UserError("the openai backend needs a base URL (teacher.base_url or --base-url)")
        self.cfg = cfg
        self.teacher = cfg.model
        self.revision = None
        self.think_prefill = think_prefill
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(cfg.api_key_env)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}

    # --- one request ---------------------------------------------------------------------------

    def _body(self, req: Request, params: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.cfg.model,
            "messages": list(req.messages),
            "n": params.n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if params.top_k:
            body["top_k"] = params.top_k
        if params.choices:  # vLLM servers (0.32 ignores the older `guided_choice`)
            body["structured_outputs"] = {"choice": list(params.choices)}
        if self.think_prefill:
            body["messages"].append({"role": "assistant", "content": THINK_OPEN + "\n"})
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        return body

    def _parse(self, req: Request, data: dict[str, Any], n: int) -> Result:
        choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) != n:
            raise RequestFailed(f"endpoint returned {len(choices)} choices, asked for {n}")
        usage = data.get("usage") or {}
        samples = []
        for choice in choices:
            msg = choice.get("message") or {}
            content = msg.get("content") or ""
            reasoning = msg.get("reasoning_content") or msg.get("reasoning")
            if reasoning:
                text, opened = f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{content}", False
            else:
                text, opened = content, self.think_prefill
            tokens = usage.get("completion_tokens") if n == 1 else None
            samples.append(Sample(text, choice.get("finish_reason"), tokens, opened))
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        return Result(
            req.key, samples=samples, prompt_tokens=usage.get("prompt_tokens"), prompt_cached_tokens=cached
        )

    async def _one(self, client: httpx.AsyncClient, req: Request, params: SamplingParams) -> Result:
        body = self._body(req, params)
        delay = self.cfg.retry_backoff_s
        last = "no attempt"
        for attempt in range(self.cfg.max_retries + 1):
            try:
                resp = await client.post(self.url, json=body, headers=self._headers)
                if resp.status_code == 200:
                    return self._parse(req, resp.json(), params.n)
                last = f"HTTP {resp.status_code}: {resp.text[:300]}"
                if resp.status_code not in RETRY_STATUS:
                    return Result(req.key, error=last)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                last = f"{type(exc).__name__}: {exc}"
            except (RequestFailed, ValueError) as exc:
                last = f"bad response: {exc}"
            if attempt < self.cfg.max_retries:
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 60.0)
        return Result(req.key, error=f"gave up after {self.cfg.max_retries + 1} attempts: {last}")

    # --- the stream ----------------------------------------------------------------------------

    async def _run(self, requests: Iterator[Request], params: SamplingParams, out: queue.Queue) -> None:
        limits = httpx.Limits(max_connections=self.cfg.max_concurrency)
        timeout = httpx.Timeout(self.cfg.request_timeout, connect=30.0)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
            sem = asyncio.Semaphore(self.cfg.max_concurrency)
            tasks: set[asyncio.Task] = set()

            async def worker(req: Request) -> None:
                try:
                    out.put(await self._one(client, req, params))
                finally:
                    sem.release()

            while (req := next(requests, _END)) is not _END:
                if req is None:  # no request ready yet (see engines/base.py)
                    await asyncio.sleep(0.01)
                    continue
                await sem.acquire()
                task = asyncio.create_task(worker(req))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)

    def stream(self, requests: Iterable[Request], params: SamplingParams) -> Iterator[Result]:
        out: queue.Queue = queue.Queue()
        failure: list[BaseException] = []

        def target() -> None:
            try:
                asyncio.run(self._run(iter(requests), params, out))
            except BaseException as exc:  # surfaced in the caller's thread
                failure.append(exc)
            finally:
                out.put(_DONE)

        thread = threading.Thread(target=target, name="distill-openai", daemon=True)
        thread.start()
        while (item := out.get()) is not _DONE:
            yield item
        thread.join()
        if failure:
            raise failure[0]
