"""The Ollama wire protocol on /api: chat, generate, embed, tags, show, version, ps."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from devloop.gateway import CallResult, StreamCall
from devloop.routing.policy import ModelNotFound, available_models, resolve_model
from devloop.server.errors import APIError
from devloop.server.http import (
    context,
    endpoint,
    gateway,
    parse,
    read_json,
    result_headers,
    stream_headers,
    translate,
)
from devloop.types import ChatRequest, CompletionRequest, EmbeddingRequest, Message, Usage

OLLAMA_VERSION = "0.12.6"  # the Ollama API level these endpoints follow
NDJSON = "application/x-ndjson"


class OllamaMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[dict[str, Any]] | None = None


class OllamaChat(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: list[OllamaMessage] = Field(default_factory=list)
    stream: bool = True
    options: dict[str, Any] = Field(default_factory=dict)
    format: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    keep_alive: str | int | float | None = None
    think: bool | str | None = None


class OllamaGenerate(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    prompt: str = ""
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    raw: bool = False
    stream: bool = True
    options: dict[str, Any] = Field(default_factory=dict)
    format: str | dict[str, Any] | None = None
    keep_alive: str | int | float | None = None
    images: list[str] | None = None


class OllamaEmbed(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    input: str | list[str] = ""
    prompt: str | None = None  # the legacy /api/embeddings field
    truncate: bool = True
    options: dict[str, Any] = Field(default_factory=dict)


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def sampling(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for theirs, ours in (("temperature", "temperature"), ("top_p", "top_p"), ("seed", "seed"),
                         ("num_predict", "max_tokens"), ("stop", "stop"),
                         ("presence_penalty", "presence_penalty"),
                         ("frequency_penalty", "frequency_penalty")):
        if options.get(theirs) is not None:
            out[ours] = options[theirs]
    if isinstance(out.get("max_tokens"), int) and out["max_tokens"] < 1:
        out.pop("max_tokens")  # Ollama's -1 / -2 mean "no limit"
    return out


def response_format(fmt: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt}}
    return None


def known_model(request: Request, name: str) -> str:
    """Ollama clients may add ':latest'; accept it for names configured without a tag."""
    profile = gateway(request).profile
    try:
        resolve_model(name, profile)
        return name
    except ModelNotFound:
        if name.endswith(":latest"):
            return known_model(request, name.removesuffix(":latest"))
        raise


def counts(usage: Usage, elapsed_ns: int) -> dict[str, Any]:
    return {
        "total_duration": elapsed_ns, "load_duration": 0,
        "prompt_eval_count": usage.prompt_tokens, "prompt_eval_duration": 0,
        "eval_count": usage.completion_tokens, "eval_duration": elapsed_ns,
    }


@endpoint
async def chat(request: Request) -> Response:
    body = parse(OllamaChat, await read_json(request))
    if not body.messages:
        raise APIError(400, "messages: at least one message is required", "invalid_value",
                       "messages")
    tool_calls = []
    messages = []
    for m in body.messages:
        tool_calls = [{"id": f"call_{i}", "type": "function",
                       "function": {"name": c.get("function", {}).get("name"),
                                    "arguments": orjson.dumps(
                                        c.get("function", {}).get("arguments", {})).decode()}}
                      for i, c in enumerate(m.tool_calls or [])]
        messages.append({"role": m.role, "content": m.content, **(
            {"tool_calls": tool_calls} if tool_calls else {})})
    req = parse(ChatRequest, {
        "model": known_model(request, body.model), "messages": messages, "stream": body.stream,
        "tools": body.tools, "response_format": response_format(body.format),
        **sampling(body.options),
    })
    return await _run(request, req, body.model, chat=True)


@endpoint
async def generate(request: Request) -> Response:
    body = parse(OllamaGenerate, await read_json(request))
    model = known_model(request, body.model)
    if not body.prompt and body.suffix is None:
        # Ollama answers an empty prompt by loading the model: report it ready.
        return Response(orjson.dumps({"model": body.model, "created_at": now_iso(),
                                      "response": "", "done": True, "done_reason": "load"}),
                        media_type="application/json")
    params = sampling(body.options)
    if body.suffix is not None or body.raw:
        req: ChatRequest | CompletionRequest = parse(CompletionRequest, {
            "model": model, "prompt": body.prompt, "suffix": body.suffix,
            "stream": body.stream, **params})
        return await _run(request, req, body.model, chat=False)
    messages = ([Message(role="system", content=body.system)] if body.system else [])
    messages.append(Message(role="user", content=body.prompt))
    req = parse(ChatRequest, {"model": model, "messages": [m.model_dump() for m in messages],
                              "stream": body.stream,
                              "response_format": response_format(body.format), **params})
    return await _run(request, req, body.model, chat=False)


async def _run(request: Request, req: ChatRequest | CompletionRequest, name: str, chat: bool
               ) -> Response:
    gw = gateway(request)
    endpoint_kind = "completions" if isinstance(req, CompletionRequest) else "chat"
    ctx = context(request, endpoint_kind, "ollama")
    started = time.perf_counter_ns()
    if req.stream:
        call = await gw.stream(req, ctx)
        return StreamingResponse(
            ndjson(call, name, chat, started), media_type=NDJSON,
            headers=stream_headers(call))
    result = await gw.call(req, ctx)
    return Response(orjson.dumps(_final(result, name, chat, started)), 200,
                    result_headers(result), media_type="application/json")


def _final(result: CallResult, name: str, chat: bool, started: int) -> dict[str, Any]:
    c = result.completion
    assert c is not None
    out: dict[str, Any] = {"model": name, "created_at": now_iso()}
    if chat:
        msg: dict[str, Any] = {"role": "assistant", "content": c.text}
        if c.tool_calls:
            msg["tool_calls"] = [{"function": {"name": t["function"]["name"],
                                               "arguments": orjson.loads(
                                                   t["function"].get("arguments") or "{}")}}
                                 for t in c.tool_calls]
        out["message"] = msg
    else:
        out["response"] = c.text
    out.update(done=True, done_reason=c.finish_reason,
               **counts(c.usage, time.perf_counter_ns() - started))
    return out


async def ndjson(call: StreamCall, name: str, chat: bool, started: int) -> AsyncIterator[bytes]:
    try:
        async for delta in call.deltas():
            piece: dict[str, Any] = {"model": name, "created_at": now_iso()}
            if delta.finish_reason is None:
                if chat:
                    piece["message"] = {"role": "assistant", "content": delta.text}
                else:
                    piece["response"] = delta.text
                piece["done"] = False
            else:
                if chat:
                    piece["message"] = {"role": "assistant", "content": ""}
                else:
                    piece["response"] = ""
                piece.update(done=True, done_reason=delta.finish_reason,
                             **counts(delta.usage or Usage(), time.perf_counter_ns() - started))
            yield orjson.dumps(piece) + b"\n"
    except Exception as exc:  # noqa: BLE001 - Ollama's stream error shape
        yield orjson.dumps({"error": translate(exc).message}) + b"\n"


@endpoint
async def embed(request: Request) -> Response:
    body = parse(OllamaEmbed, await read_json(request))
    legacy = request.url.path.endswith("/embeddings")
    texts = [body.prompt or ""] if legacy else (
        [body.input] if isinstance(body.input, str) else list(body.input))
    req = EmbeddingRequest(model=known_model(request, body.model), input=texts)
    req.texts()  # empty input is a 400 before anything is routed
    gw = gateway(request)
    started = time.perf_counter_ns()
    result = await gw.embed(req, context(request, "embeddings", "ollama"))
    emb = result.embeddings
    assert emb is not None
    if legacy:
        out: dict[str, Any] = {"embedding": emb.vectors[0]}
    else:
        out = {"model": body.model, "embeddings": emb.vectors,
               "total_duration": time.perf_counter_ns() - started, "load_duration": 0,
               "prompt_eval_count": emb.usage.prompt_tokens}
    return Response(orjson.dumps(out), 200, result_headers(result), media_type="application/json")


def _model_entry(name: str, backend: str, modified: str) -> dict[str, Any]:
    return {
        "name": name, "model": name, "modified_at": modified, "size": 0,
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": {"parent_model": "", "format": "gguf" if backend == "embedded" else backend,
                    "family": backend, "families": [backend], "parameter_size": "",
                    "quantization_level": ""},
    }


def _backend_of(request: Request, name: str) -> str:
    gw = gateway(request)
    tier, _, _ = resolve_model(name, gw.profile)
    return gw.profile.tiers[tier].backend if tier else "router"


@endpoint
async def tags(request: Request) -> Response:
    gw = gateway(request)
    modified = now_iso()
    models = [_model_entry(n, _backend_of(request, n), modified)
              for n in available_models(gw.profile)]
    return Response(orjson.dumps({"models": models}), media_type="application/json")


@endpoint
async def show(request: Request) -> Response:
    data = await read_json(request)
    name = data.get("model") or data.get("name")
    if not isinstance(name, str) or not name:
        raise APIError(400, "model: required", "missing_field", "model")
    name = known_model(request, name)
    gw = gateway(request)
    tier, concrete, _ = resolve_model(name, gw.profile)
    cfg = gw.profile.tiers[tier] if tier else None
    entry = _model_entry(name, _backend_of(request, name), now_iso())
    n_ctx = cfg.n_ctx if cfg and cfg.backend == "embedded" else 8192
    body = {
        "modelfile": f"# devloop {'tier ' + tier if tier else 'router'}\nFROM {concrete or name}\n",
        "parameters": "", "template": "{{ .Prompt }}", "details": entry["details"],
        "model_info": {"general.architecture": "devloop", "devloop.context_length": n_ctx,
                       "devloop.tier": tier or "auto",
                       "devloop.model": concrete or (cfg.model if cfg else "auto")},
        "capabilities": ["completion", "tools", "insert", "embedding"],
        "modified_at": entry["modified_at"],
    }
    return Response(orjson.dumps(body), media_type="application/json")


async def version(request: Request) -> Response:
    return Response(orjson.dumps({"version": OLLAMA_VERSION}), media_type="application/json")


@endpoint
async def ps(request: Request) -> Response:
    gw = gateway(request)
    running = []
    for tier, backend in gw.router.backends.items():
        runner = getattr(backend, "runner", None)
        if runner is not None and runner.loaded_at:
            entry = _model_entry(backend.default_model, "embedded", now_iso())
            entry.update(expires_at="0001-01-01T00:00:00Z", size_vram=0,
                         context_length=runner.n_ctx)
            entry["details"]["family"] = tier
            running.append(entry)
    return Response(orjson.dumps({"models": running}), media_type="application/json")


routes = [
    Route("/api/chat", chat, methods=["POST"]),
    Route("/api/generate", generate, methods=["POST"]),
    Route("/api/embed", embed, methods=["POST"]),
    Route("/api/embeddings", embed, methods=["POST"]),
    Route("/api/tags", tags, methods=["GET"]),
    Route("/api/show", show, methods=["POST"]),
    Route("/api/version", version, methods=["GET"]),
    Route("/api/ps", ps, methods=["GET"]),
]
