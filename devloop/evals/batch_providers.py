"""Provider Batch API clients: submit requests, poll, read results, cancel.

- OpenAI (and any OpenAI-compatible Batch API, devloop's own included): litellm's files and
  batches calls (upload a JSONL file, create a batch, retrieve it, read the output file).
- Anthropic Message Batches: litellm 1.100.0 retrieves Anthropic batches but cannot create
  one from messages nor read its results, so a small aiohttp client speaks the three
  endpoints (``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``, its
  ``results`` JSONL) and cancel. The key comes from ``ANTHROPIC_API_KEY`` only.

Statuses are normalised to ``in_progress``, ``cancelling``, ``ended`` (results can be read),
``failed``, ``expired`` and ``cancelled``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Protocol

from devloop.config import ConfigError
from devloop.evals.client import EvalCallError, ModelClient, Reply, import_litellm

OPENAI_ENDPOINT = "/v1/chat/completions"
ANTHROPIC_BASE = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
# Providers whose Batch API devloop speaks; litellm provider prefix -> client.
BATCH_PROVIDERS = ("openai", "anthropic")
FINAL = frozenset({"ended", "failed", "expired", "cancelled"})
# Request fields that mean the same in an OpenAI body and Anthropic Messages params.
ANTHROPIC_SAME = frozenset({"top_p", "top_k", "stop_sequences", "metadata"})


@dataclass(slots=True)
class BatchRequest:
    custom_id: str
    model: str  # the provider's own name (no prefix)
    messages: list[dict[str, Any]]
    temperature: float | None
    max_tokens: int
    extra: dict[str, Any] | None = None  # other body fields (OpenAI lines keep them all)


def provider_of(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else "openai"


def supports_batch(model: str) -> bool:
    return provider_of(model) in BATCH_PROVIDERS


def check_batch_model(model: str) -> None:
    if not supports_batch(model):
        raise ConfigError("--batch", "model", (
            f"{model!r}: provider {provider_of(model)!r} has no Batch API devloop can use "
            f"(supported: {', '.join(BATCH_PROVIDERS)}); use --batch=auto to run it "
            "synchronously instead"))


class BatchClient(Protocol):
    provider: str

    async def submit(self, requests: list[BatchRequest], metadata: dict[str, str]) -> str: ...
    async def poll(self, batch_id: str) -> tuple[str, str]: ...
    async def results(self, batch_id: str) -> dict[str, Reply | Exception]: ...
    async def cancel(self, batch_id: str) -> str: ...


def client_for(model: str, api_base: str | None, client: ModelClient,
               api_key_env: str | None = None) -> BatchClient:
    """The provider's client; the key comes from ``api_key_env`` (a tier's) or the
    provider's usual variable, from the environment only."""
    provider = provider_of(model)
    if provider == "anthropic":
        return AnthropicBatches(api_base, client, api_key_env)
    check_batch_model(model)
    return OpenAIBatches(api_base, client, api_key_env)


# -- OpenAI through litellm ------------------------------------------------------------------
_OPENAI_STATUS = {"validating": "in_progress", "in_progress": "in_progress",
                  "finalizing": "in_progress", "cancelling": "cancelling",
                  "completed": "ended", "failed": "failed", "expired": "expired",
                  "cancelled": "cancelled"}


def _content_bytes(content: Any) -> bytes:
    for attr in ("content", "read"):
        value = getattr(content, attr, None)
        if isinstance(value, bytes):
            return value
        if callable(value):
            data = value()
            if isinstance(data, bytes):
                return data
    if isinstance(content, bytes | str):
        return content.encode() if isinstance(content, str) else content
    raise EvalCallError(f"unexpected batch file content: {type(content).__name__}")


def parse_openai_output(data: bytes) -> dict[str, Reply | Exception]:
    """OpenAI batch output/error JSONL -> custom_id: Reply, or the error for that line."""
    out: dict[str, Reply | Exception] = {}
    for raw in data.decode("utf-8", "replace").splitlines():
        if not raw.strip():
            continue
        line = json.loads(raw)
        custom_id = str(line.get("custom_id"))
        response = line.get("response") or {}
        body = response.get("body") or {}
        status = int(response.get("status_code") or 0)
        if status == 200 and body.get("choices"):
            choice = body["choices"][0]
            usage = body.get("usage") or {}
            out[custom_id] = Reply((choice.get("message") or {}).get("content") or "",
                                   int(usage.get("prompt_tokens") or 0),
                                   int(usage.get("completion_tokens") or 0), None,
                                   choice.get("finish_reason") or "stop")
            continue
        error = line.get("error") or body.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else str(error)
        out[custom_id] = EvalCallError(f"batch request failed ({status or 'no response'}): "
                                       f"{message or 'unknown error'}", status or None)
    return out


class OpenAIBatches:
    provider = "openai"

    def __init__(self, api_base: str | None, client: ModelClient,
                 api_key_env: str | None = None) -> None:
        self.client = client
        self.kw: dict[str, Any] = {"custom_llm_provider": "openai", "timeout": client.timeout}
        if api_key_env and os.environ.get(api_key_env):
            self.kw["api_key"] = os.environ[api_key_env]
        if api_base:
            self.kw["api_base"] = api_base
            if not os.environ.get("OPENAI_API_KEY"):
                self.kw.setdefault("api_key", "devloop-local")
        self._batch: Any = None

    async def submit(self, requests: list[BatchRequest], metadata: dict[str, str]) -> str:
        litellm = import_litellm()
        lines = []
        for r in requests:
            body: dict[str, Any] = {**(r.extra or {}), "model": r.model,
                                    "messages": r.messages, "max_tokens": r.max_tokens}
            if r.temperature is not None:
                body["temperature"] = r.temperature
            lines.append(json.dumps({"custom_id": r.custom_id, "method": "POST",
                                     "url": OPENAI_ENDPOINT, "body": body}, ensure_ascii=False))
        data = ("\n".join(lines) + "\n").encode("utf-8")
        upload = await self.client._with_retries("batch file upload", lambda: litellm.acreate_file(
            file=("devloop-batch.jsonl", data, "application/jsonl"), purpose="batch", **self.kw))
        batch = await self.client._with_retries("batch create", lambda: litellm.acreate_batch(
            completion_window="24h", endpoint=OPENAI_ENDPOINT, input_file_id=upload.id,
            metadata=metadata, **self.kw))
        return str(batch.id)

    async def _retrieve(self, batch_id: str) -> Any:
        litellm = import_litellm()
        return await self.client._with_retries("batch status", lambda: litellm.aretrieve_batch(
            batch_id=batch_id, **self.kw))

    async def poll(self, batch_id: str) -> tuple[str, str]:
        batch = await self._retrieve(batch_id)
        status = _OPENAI_STATUS.get(str(batch.status), "in_progress")
        errors = getattr(batch, "errors", None)
        detail = "; ".join(str(getattr(e, "message", e))
                           for e in (getattr(errors, "data", None) or []))
        return status, detail

    async def results(self, batch_id: str) -> dict[str, Reply | Exception]:
        litellm = import_litellm()
        batch = await self._retrieve(batch_id)
        out: dict[str, Reply | Exception] = {}
        for file_id in (batch.error_file_id, batch.output_file_id):
            if file_id:
                content = await self.client._with_retries(
                    "batch output", lambda f=file_id: litellm.afile_content(file_id=f, **self.kw))
                out.update(parse_openai_output(_content_bytes(content)))
        return out

    async def cancel(self, batch_id: str) -> str:
        litellm = import_litellm()
        batch = await self.client._with_retries("batch cancel", lambda: litellm.acancel_batch(
            batch_id=batch_id, **self.kw))
        return _OPENAI_STATUS.get(str(batch.status), "cancelling")


# -- Anthropic Message Batches over aiohttp ----------------------------------------------------
def anthropic_params(r: BatchRequest) -> dict[str, Any]:
    """An OpenAI-style message list as Message Batches ``params`` (system lifted out)."""
    system = "\n\n".join(str(m["content"]) for m in r.messages if m["role"] == "system")
    params: dict[str, Any] = {"model": r.model, "max_tokens": r.max_tokens,
                              "messages": [m for m in r.messages if m["role"] != "system"]}
    if system:
        params["system"] = system
    if r.temperature is not None:
        params["temperature"] = r.temperature
    for key, value in (r.extra or {}).items():
        if key in ANTHROPIC_SAME:
            params[key] = value
        elif key == "stop":
            params["stop_sequences"] = [value] if isinstance(value, str) else value
        else:  # never dropped: said, so the user can run it without --batch
            raise ConfigError("--batch", key, "devloop cannot send this field in an Anthropic "
                              "Message Batch; run this eval set without --batch")
    return params


def parse_anthropic_results(data: bytes) -> dict[str, Reply | Exception]:
    out: dict[str, Reply | Exception] = {}
    for raw in data.decode("utf-8", "replace").splitlines():
        if not raw.strip():
            continue
        line = json.loads(raw)
        custom_id, result = str(line.get("custom_id")), line.get("result") or {}
        kind = result.get("type")
        if kind == "succeeded":
            msg = result.get("message") or {}
            text = "".join(b.get("text", "") for b in msg.get("content") or []
                           if b.get("type") == "text")
            usage = msg.get("usage") or {}
            stop = {"end_turn": "stop", "max_tokens": "length",
                    "stop_sequence": "stop"}.get(msg.get("stop_reason"), "stop")
            out[custom_id] = Reply(text, int(usage.get("input_tokens") or 0),
                                   int(usage.get("output_tokens") or 0), None, stop)
        elif kind == "errored":
            err = (result.get("error") or {}).get("error") or result.get("error") or {}
            out[custom_id] = EvalCallError(f"batch request errored: {err.get('type', '')}: "
                                           f"{err.get('message', 'unknown error')}")
        else:
            out[custom_id] = EvalCallError(f"batch request {kind or 'has no result'}")
    return out


class AnthropicBatches:
    provider = "anthropic"

    def __init__(self, api_base: str | None, client: ModelClient,
                 api_key_env: str | None = None) -> None:
        self.key_env = api_key_env or "ANTHROPIC_API_KEY"
        self.base = (api_base or os.environ.get("ANTHROPIC_API_BASE")
                     or ANTHROPIC_BASE).rstrip("/")
        if self.base.endswith("/v1"):
            self.base = self.base[:-3]
        self.client = client

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.key_env)
        if not key:
            raise EvalCallError(f"{self.key_env} is not set (Anthropic Message Batches)")
        return {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION,
                "content-type": "application/json"}

    async def _request(self, what: str, method: str, path: str,
                       body: dict[str, Any] | None = None, raw: bool = False) -> Any:
        import aiohttp

        headers = self._headers()

        async def call() -> Any:
            timeout = aiohttp.ClientTimeout(total=self.client.timeout)
            async with aiohttp.ClientSession(timeout=timeout) as session, session.request(
                    method, self.base + path, json=body, headers=headers) as resp:
                data = await resp.read()
                if resp.status >= 400:
                    raise _HTTPError(resp.status, data, resp.headers.get("retry-after"))
                return data if raw else json.loads(data)

        return await self.client._with_retries(what, call)

    async def submit(self, requests: list[BatchRequest], metadata: dict[str, str]) -> str:
        body = {"requests": [{"custom_id": r.custom_id, "params": anthropic_params(r)}
                             for r in requests]}
        batch = await self._request("batch create", "POST", "/v1/messages/batches", body)
        return str(batch["id"])

    async def poll(self, batch_id: str) -> tuple[str, str]:
        batch = await self._request("batch status", "GET", f"/v1/messages/batches/{batch_id}")
        status = batch.get("processing_status")
        if status == "ended":
            return "ended", json.dumps(batch.get("request_counts") or {})
        return ("cancelling" if status == "canceling" else "in_progress"), ""

    async def results(self, batch_id: str) -> dict[str, Reply | Exception]:
        data = await self._request("batch results", "GET",
                                   f"/v1/messages/batches/{batch_id}/results", raw=True)
        return parse_anthropic_results(data)

    async def cancel(self, batch_id: str) -> str:
        batch = await self._request("batch cancel", "POST",
                                    f"/v1/messages/batches/{batch_id}/cancel", {})
        return "ended" if batch.get("processing_status") == "ended" else "cancelling"


class _HTTPError(Exception):
    """An HTTP error from the provider, shaped for ModelClient's retry rules."""

    def __init__(self, status: int, data: bytes, retry_after: str | None) -> None:
        try:
            err = json.loads(data).get("error") or {}
            message = err.get("message") if isinstance(err, dict) else str(err)
        except (ValueError, AttributeError):
            message = data[:200].decode("utf-8", "replace")
        super().__init__(message or f"HTTP {status}")
        self.status_code = status
        self.response = type("R", (), {"status_code": status,
                                        "headers": {"retry-after": retry_after}
                                        if retry_after else {}})()
