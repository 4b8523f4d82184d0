"""Calling the production model (and the judge and embedding models) through litellm.

litellm is imported on first use. Calls share one concurrency limit; 429s, 5xx and
connection failures are retried with exponential backoff (honouring Retry-After), anything
else (a bad key, an unknown model) fails at once as an :class:`EvalCallError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import time
from dataclasses import dataclass
from typing import Any

from devloop.pricing import Pricing

_CLASS_PREFIX = re.compile(r"^(?:litellm\.)?\w*(?:Error|Exception)(?: - |: )")
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
MAX_BACKOFF_S = 30.0


class EvalCallError(RuntimeError):
    """A model call that failed for good (after retries, or at once when not retryable)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float | None
    finish_reason: str = "stop"


def import_litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the price map
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


AUTH_MARKERS = ("missing credentials", "api key", "api_key", "authentication", "unauthorized",
                "invalid x-api-key", "permission denied")


def is_auth_error(exc: Exception) -> bool:
    """A bad or missing key: retrying cannot help (litellm reports a missing OpenAI key as
    an InternalServerError 500 'Missing credentials')."""
    if _status(exc) in (401, 403) or type(exc).__name__ in ("AuthenticationError",
                                                          "PermissionDeniedError"):
        return True
    text = str(exc).lower()
    return any(marker in text for marker in AUTH_MARKERS)


def retryable(exc: Exception) -> bool:
    if is_auth_error(exc):
        return False
    status = _status(exc)
    if status is not None:
        return status in RETRY_STATUSES
    name = type(exc).__name__
    return name in {"APIConnectionError", "Timeout", "ServiceUnavailableError",
                    "InternalServerError", "RateLimitError", "ConnectError", "ReadTimeout"}


def describe(exc: Exception) -> str:
    """One line: the error's class and message without litellm's repeated class prefixes."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    while (m := _CLASS_PREFIX.match(text)) is not None and m.end() < len(text):
        text = text[m.end():]
    status = _status(exc)
    head = f"{type(exc).__name__}" + (f" ({status})" if status else "")
    return f"{head}: {text[:300]}" if text else head


class ModelClient:
    def __init__(self, api_base: str | None = None, concurrency: int = 4, max_retries: int = 4,
                 timeout: float = 120.0, backoff_s: float = 0.5,
                 headers: dict[str, str] | None = None) -> None:
        self.api_base = api_base
        self.limit = asyncio.Semaphore(max(1, concurrency))
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff_s = backoff_s
        self.headers = headers or {}
        self.calls = 0
        self.retries = 0
        self._warm = False

    def common(self, model: str, api_base: str | None = None) -> dict[str, Any]:
        kw: dict[str, Any] = {"timeout": self.timeout, "num_retries": 0}
        api_base = api_base or self.api_base
        if api_base:
            kw["api_base"] = api_base
            if self.headers:
                kw["extra_headers"] = dict(self.headers)
            if model.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
                kw["api_key"] = "devloop-local"  # local OpenAI-compatible servers take any key
        return kw

    async def _with_retries(self, what: str, fn: Any) -> Any:
        attempt = 0
        while True:
            async with self.limit:
                self.calls += 1
                try:
                    return await fn()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - classified below
                    error = exc
            if attempt >= self.max_retries or not retryable(error):
                status = _status(error)
                raise EvalCallError(f"{what}: {describe(error)}", status)
            # Exponential backoff, never sooner than Retry-After, with jitter so that calls
            # refused together do not all come back at the same moment.
            backoff = self.backoff_s * (2 ** attempt)
            delay = max(_retry_after(error) or 0.0, backoff) + random.random() * backoff
            attempt += 1
            self.retries += 1
            await asyncio.sleep(min(delay, MAX_BACKOFF_S))

    async def warm_up(self, model: str, api_base: str | None = None) -> None:
        """Import litellm and run its request path once against a loopback responder, so the
        first case's latency is the model's, not litellm's start-up."""
        litellm = import_litellm()
        if self._warm:
            return
        self._warm = True
        from devloop.evals.warmup import warm_litellm

        with contextlib.suppress(Exception):  # warming is best effort
            await warm_litellm(litellm, model)

    async def chat(self, model: str, messages: list[dict[str, Any]], temperature: float | None,
                   max_tokens: int | None, api_base: str | None = None, **extra: Any) -> Reply:
        litellm = import_litellm()
        kw = {**self.common(model, api_base), **extra}
        if temperature is not None:
            kw["temperature"] = temperature
        if max_tokens is not None:
            kw["max_tokens"] = max_tokens

        async def call() -> Reply:
            started = time.perf_counter()
            resp = await litellm.acompletion(model=model, messages=messages, **kw)
            latency = (time.perf_counter() - started) * 1000
            # latency is the model's: litellm's own set-up (imports, client creation on the
            # first call) is what it reports as its overhead, taken out here
            overhead = (getattr(resp, "_hidden_params", None) or {}).get(
                "litellm_overhead_time_ms")
            if isinstance(overhead, int | float) and 0 <= overhead < latency:
                latency -= overhead
            choice = resp.choices[0]
            usage = getattr(resp, "usage", None)
            return Reply(choice.message.content or "",
                         int(getattr(usage, "prompt_tokens", 0) or 0),
                         int(getattr(usage, "completion_tokens", 0) or 0),
                         latency, choice.finish_reason or "stop")

        return await self._with_retries(model, call)

    async def embed(self, model: str, texts: list[str], api_base: str | None = None
                    ) -> tuple[list[list[float]], int]:
        litellm = import_litellm()
        kw = self.common(model, api_base)

        async def call() -> tuple[list[list[float]], int]:
            resp = await litellm.aembedding(model=model, input=texts, **kw)
            vectors = [item["embedding"] for item in resp.data]
            usage = getattr(resp, "usage", None)
            return vectors, int(getattr(usage, "prompt_tokens", 0) or 0)

        return await self._with_retries(f"{model} (embeddings)", call)


class LiteLLMGrader:
    """The :class:`devloop.evals.assertions.Grader` for ``devloop eval``: the judge defaults
    to the production model, embeddings go to the same api_base. Costs are priced with the
    profile's prices; an unknown price is NaN so the case's cost shows as unknown."""

    JUDGE_MAX_TOKENS = 512

    def __init__(self, client: ModelClient, pricing: Pricing, judge_model: str,
                 embedding_model: str, api_base: str | None = None) -> None:
        self.client = client
        self.api_base = api_base
        self.pricing = pricing
        self.judge_model = judge_model
        self.embedding_model = embedding_model

    async def judge(self, messages: list[dict[str, str]], model: str | None
                    ) -> tuple[str, float]:
        model = model or self.judge_model
        reply = await self.client.chat(model, messages, 0.0, self.JUDGE_MAX_TOKENS,
                                       api_base=self.api_base)
        cost = self.pricing.cost(model, reply.prompt_tokens, reply.completion_tokens)
        return reply.text, float("nan") if cost is None else cost

    async def embed(self, texts: list[str], model: str | None
                    ) -> tuple[list[list[float]], float]:
        model = model or self.embedding_model
        vectors, tokens = await self.client.embed(model, texts, self.api_base)
        cost = self.pricing.cost(model, tokens, 0)
        return vectors, float("nan") if cost is None else cost
