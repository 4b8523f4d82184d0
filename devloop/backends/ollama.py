"""The local tier on Ollama's native API, through the official ``ollama`` AsyncClient."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from devloop.backends.base import Backend, BackendError, UpstreamTimeout, UpstreamUnavailable
from devloop.config import TierConfig
from devloop.types import (
    Capabilities,
    ChatRequest,
    Completion,
    CompletionRequest,
    Delta,
    Embeddings,
    Health,
    Message,
    Usage,
)

if TYPE_CHECKING:
    import ollama


def ollama_options(req: ChatRequest | CompletionRequest, limit: int | None) -> dict[str, Any]:
    # The client's own options first (num_ctx, top_k, min_p, ...), then those devloop maps.
    opts: dict[str, Any] = dict((req.native or {}).get("options") or {})
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

    def default_capabilities(self) -> Capabilities:
        """Until /api/show says otherwise: tools, JSON, FIM (Ollama refuses what a model
        cannot do itself); no images (Ollama would drop them for a text-only model)."""
        return Capabilities(tools=True, parallel_tool_calls=True, vision=False,
                            json_object=True, json_schema=True, fim=True, logprobs=False,
                            max_n=1, ollama_native=True)

    async def discover(self) -> None:
        try:
            async with httpx.AsyncClient(timeout=2.0) as probe:
                resp = await probe.post(self.base_url + "/api/show",
                                        json={"model": self.config.model})
            data = resp.json() if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return
        if not isinstance(data, dict):
            return
        caps = set(data.get("capabilities") or ())
        info = data.get("model_info") or {}
        ctx = next((v for k, v in info.items()
                    if k.endswith(".context_length") and isinstance(v, int)), None)
        base = self.default_capabilities()
        if caps:
            base = dataclasses.replace(base, tools="tools" in caps,
                                       parallel_tool_calls="tools" in caps,
                                       vision="vision" in caps, fim="insert" in caps,
                                       embeddings="embedding" in caps or "completion" in caps)
        self._discovered = dataclasses.replace(base, context_length=ctx)

    async def load(self, model: str, unload: bool) -> None:
        try:
            await self.client.chat(model=model, messages=[], keep_alive=0 if unload else None)
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc) from None

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

    def _chat_args(self, req: ChatRequest, model: str, stream: bool) -> dict[str, Any]:
        native = req.native or {}
        args: dict[str, Any] = {
            "model": model, "messages": ollama_messages(req.messages), "tools": req.tools,
            "stream": stream, "options": ollama_options(req, req.token_limit()),
            "format": _format(req.response_format)}
        for name in ("think", "keep_alive"):
            if native.get(name) is not None:
                args[name] = native[name]
        return args

    def _generate_args(self, req: CompletionRequest, model: str, stream: bool) -> dict[str, Any]:
        native = req.native or {}
        args: dict[str, Any] = {
            "model": model, "prompt": req.prompt_text(), "suffix": req.suffix or None,
            "stream": stream, "options": ollama_options(req, req.max_tokens),
            "raw": bool(native.get("raw", False))}
        for name in ("think", "keep_alive", "context", "template", "system", "images",
                     "format"):
            if native.get(name) is not None:
                args[name] = native[name]
        return args

    async def chat(self, req: ChatRequest, model: str,
                   forward_headers: dict[str, str] | None = None) -> Completion:
        try:
            resp = await self.client.chat(**self._chat_args(req, model, False))
        except Exception as exc:  # noqa: BLE001 - translated to a typed error
            raise self._error(exc) from None
        calls = _tool_calls(resp.message.tool_calls)
        thinking = getattr(resp.message, "thinking", None)
        return Completion(resp.message.content or "", model,
                          "tool_calls" if calls else _finish(resp.done_reason),
                          usage_of(resp), calls,
                          message_extra={"reasoning_content": thinking} if thinking else None)

    async def chat_stream(self, req: ChatRequest, model: str,
                          forward_headers: dict[str, str] | None = None) -> AsyncIterator[Delta]:
        n_calls = 0
        try:
            stream = await self.client.chat(**self._chat_args(req, model, True))
            async for part in stream:
                calls = _tool_calls(part.message.tool_calls, n_calls)
                n_calls += len(calls or ())
                thinking = getattr(part.message, "thinking", None)
                if part.message.content or calls or thinking:
                    yield Delta(text=part.message.content or "", tool_calls=calls,
                                extra={"reasoning_content": thinking} if thinking else None)
                if part.done:
                    yield Delta(finish_reason="tool_calls" if n_calls
                                else _finish(part.done_reason), usage=usage_of(part))
                    return
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc) from None
        raise BackendError(f"{self.tier}: Ollama stream ended without done")

    async def complete(self, req: CompletionRequest, model: str,
                       forward_headers: dict[str, str] | None = None) -> Completion:
        try:
            resp = await self.client.generate(**self._generate_args(req, model, False))
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc) from None
        extra = {"context": list(resp.context)} if getattr(resp, "context", None) else None
        return Completion(resp.response or "", model, _finish(resp.done_reason), usage_of(resp),
                          extra=extra)

    async def complete_stream(self, req: CompletionRequest, model: str,
                              forward_headers: dict[str, str] | None = None) -> AsyncIterator[Delta]:
        try:
            stream = await self.client.generate(**self._generate_args(req, model, True))
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


def _tool_calls(calls: Any, first_index: int = 0) -> list[dict[str, Any]] | None:
    """Ollama's whole tool calls -> OpenAI's shape, each with a unique id and its ``index``."""
    if not calls:
        return None
    import json
    import uuid

    return [
        {"index": first_index + i, "id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
         "function": {"name": c.function.name, "arguments": json.dumps(dict(c.function.arguments))}}
        for i, c in enumerate(calls)
    ]


def image_data(part: dict[str, Any]) -> str:
    """An OpenAI ``image_url`` part -> the base64 string Ollama takes (data URLs only)."""
    url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), dict) \
        else part.get("image_url")
    if not isinstance(url, str) or not url.startswith("data:") or "," not in url:
        raise BackendError("image_url: only data: URLs (base64) can be sent to Ollama", 400,
                           False)
    return url.split(",", 1)[1]


def ollama_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """OpenAI messages -> Ollama's: images as base64 lists, tool calls with object arguments,
    a tool result named by the function its ``tool_call_id`` points at."""
    names: dict[str, str] = {}
    out = []
    for m in messages:
        role = "system" if m.role == "developer" else m.role
        msg: dict[str, Any] = {"role": role, "content": m.text()}
        if isinstance(m.content, list):
            images = [image_data(p) for p in m.content
                      if isinstance(p, dict) and p.get("type") == "image_url"]
            if images:
                msg["images"] = images
        if m.tool_calls:
            msg["tool_calls"] = []
            for c in m.tool_calls:
                fn = c.get("function") or {}
                if c.get("id"):
                    names[c["id"]] = fn.get("name") or ""
                msg["tool_calls"].append({"function": {"name": fn.get("name"),
                                                       "arguments": _json_args(fn.get("arguments"))}})
        if m.role == "tool":
            name = m.name or names.get(m.tool_call_id or "")
            if name:
                msg["tool_name"] = name
        thinking = (m.model_extra or {}).get("reasoning_content")
        if thinking:
            msg["thinking"] = thinking
        out.append(msg)
    return out
