"""The local tier on Ollama's native API, through the official ``ollama`` AsyncClient."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from devloop.backends.base import Backend, BackendError, UpstreamTimeout, UpstreamUnavailable
from devloop.config import TierConfig
from devloop.types import (
    ChatRequest,
    Completion,
    CompletionRequest,
    Delta,
    Embeddings,
    Health,
    Usage,
)

if TYPE_CHECKING:
    import ollama


def ollama_options(req: ChatRequest | CompletionRequest, limit: int | None) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("seed", "seed"),
                         ("presence_penalty", "presence_penalty"),
                         ("frequency_penalty", "frequency_penalty")):
        value = getattr(req, ours)
        if value is not None:
            opts[theirs] = value
    if limit is not None:
        opts["num_predict"] = limit
    if req.stop_list():
        opts["stop"] = req.stop_list()
    return opts


def usage_of(resp: Any) -> Usage:
    return Usage(int(resp.prompt_eval_count or 0), int(resp.eval_count or 0))


class OllamaBackend(Backend):
    kind = "ollama"

    def __init__(self, tier: str, config: TierConfig, probe_timeout: float = 2.0) -> None:
        super().__init__(tier, config)
        self.probe_timeout = probe_timeout  # Settings.ollama_probe_timeout
        self.base_url = (config.base_url or "http://127.0.0.1:11434").rstrip("/")
        self._client: ollama.AsyncClient | None = None

    @property
    def client(self) -> ollama.AsyncClient:
        if self._client is None:
            import ollama  # on first use: the client library costs startup time

            self._client = ollama.AsyncClient(host=self.base_url, timeout=self.config.timeout)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client._client.aclose()

    def _error(self, exc: Exception) -> BackendError:
        if isinstance(exc, ConnectionError | httpx.ConnectError):
            return UpstreamUnavailable(f"{self.tier}: Ollama not reachable at {self.base_url}")
        if isinstance(exc, httpx.TimeoutException):
            return UpstreamTimeout(f"{self.tier}: Ollama at {self.base_url} timed out")
        from ollama import ResponseError

        if isinstance(exc, ResponseError):
            status = exc.status_code if 400 <= exc.status_code < 500 else 502
            return BackendError(f"{self.tier}: Ollama: {exc.error}", status,
                                retryable=exc.status_code >= 500 or exc.status_code == 404)
        if isinstance(exc, httpx.HTTPError):
            return BackendError(f"{self.tier}: Ollama stream failed: {exc}")
        return BackendError(f"{self.tier}: Ollama: {exc}")

    @staticmethod
    def _messages(req: ChatRequest) -> list[dict[str, Any]]:
        out = []
        for m in req.messages:
            msg: dict[str, Any] = {"role": m.role, "content": m.text()}
            if m.tool_calls:
                msg["tool_calls"] = [
                    {"function": {"name": c.get("function", {}).get("name"),
                                  "arguments": _json_args(c.get("function", {}).get("arguments"))}}
                    for c in m.tool_calls
                ]
            out.append(msg)
        return out

    async def chat(self, req: ChatRequest, model: str,
                   forward_headers: dict[str, str] | None = None) -> Completion:
        try:
            resp = await self.client.chat(
                model=model, messages=self._messages(req), tools=req.tools, stream=False,
                options=ollama_options(req, req.token_limit()),
                format=_format(req.response_format),
            )
        except Exception as exc:  # noqa: BLE001 - translated to a typed error
            raise self._error(exc) from None
        calls = _tool_calls(resp.message.tool_calls)
        return Completion(resp.message.content or "", model,
                          "tool_calls" if calls else _finish(resp.done_reason),
                          usage_of(resp), calls)

    async def chat_stream(self, req: ChatRequest, model: str,
                          forward_headers: dict[str, str] | None = None) -> AsyncIterator[Delta]:
        try:
            stream = await self.client.chat(
                model=model, messages=self._messages(req), tools=req.tools, stream=True,
                options=ollama_options(req, req.token_limit()),
                format=_format(req.response_format),
            )
            async for part in stream:
                calls = _tool_calls(part.message.tool_calls)
                if part.message.content or calls:
                    yield Delta(text=part.message.content or "", tool_calls=calls)
                if part.done:
                    yield Delta(finish_reason=_finish(part.done_reason), usage=usage_of(part))
                    return
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc) from None
        raise BackendError(f"{self.tier}: Ollama stream ended without done")

    async def complete(self, req: CompletionRequest, model: str,
                       forward_headers: dict[str, str] | None = None) -> Completion:
        try:
            resp = await self.client.generate(
                model=model, prompt=req.prompt_text(), suffix=req.suffix or None, raw=False,
                stream=False, options=ollama_options(req, req.max_tokens),
            )
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc) from None
        return Completion(resp.response or "", model, _finish(resp.done_reason), usage_of(resp))

    async def complete_stream(self, req: CompletionRequest, model: str,
                              forward_headers: dict[str, str] | None = None) -> AsyncIterator[Delta]:
        try:
            stream = await self.client.generate(
                model=model, prompt=req.prompt_text(), suffix=req.suffix or None, stream=True,
                options=ollama_options(req, req.max_tokens),
            )
            async for part in stream:
                if part.response:
                    yield Delta(text=part.response)
                if part.done:
                    yield Delta(finish_reason=_finish(part.done_reason), usage=usage_of(part))
                    return
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc) from None
        raise BackendError(f"{self.tier}: Ollama stream ended without done")

    async def embed(self, texts: list[str], model: str,
                    forward_headers: dict[str, str] | None = None) -> Embeddings:
        try:
            resp = await self.client.embed(model=self.config.embedding_model or model, input=texts)
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc) from None
        vectors = [list(v) for v in resp.embeddings]
        return Embeddings(vectors, model, Usage(int(resp.prompt_eval_count or 0), 0))

    async def health(self) -> Health:
        start = time.perf_counter()
        try:
            async with httpx.AsyncClient(timeout=self.probe_timeout) as probe:
                resp = await probe.get(self.base_url + "/api/tags")
            models = [m.get("model") or m.get("name") for m in resp.json().get("models", [])]
        except (httpx.HTTPError, ValueError) as exc:
            return Health(False, f"unreachable at {self.base_url} ({type(exc).__name__})")
        return Health(resp.status_code == 200, f"HTTP {resp.status_code}",
                      (time.perf_counter() - start) * 1000, [m for m in models if m])


def _finish(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


def _format(response_format: dict[str, Any] | None) -> Any:
    if not response_format:
        return None
    if response_format.get("type") == "json_object":
        return "json"
    if response_format.get("type") == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema")
    return None


def _json_args(args: Any) -> Any:
    if isinstance(args, str):
        import json

        try:
            return json.loads(args)
        except ValueError:
            return {}
    return args or {}


def _tool_calls(calls: Any) -> list[dict[str, Any]] | None:
    if not calls:
        return None
    import json

    return [
        {"id": f"call_{i}", "type": "function",
         "function": {"name": c.function.name, "arguments": json.dumps(dict(c.function.arguments))}}
        for i, c in enumerate(calls)
    ]
