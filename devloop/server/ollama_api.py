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
from starlette.responses import Response
from starlette.routing import Route

from devloop.accumulate import StreamAccumulator
from devloop.gateway import CallResult, StreamCall
from devloop.routing.policy import (
    ModelNotFound,
    PolicyInput,
    available_models,
    decide,
    resolve_model,
)
from devloop.server.errors import APIError
from devloop.server.http import (
    check_dimensions,
    context,
    endpoint,
    gateway,
    parse,
    read_json,
    result_headers,
    stream_headers,
    translate,
)
from devloop.server.ollama_convert import (
    OllamaChat,
    OllamaGenerate,
    chat_request,
    done_reason,
    generate_request,
    ollama_tool_calls,
)
from devloop.server.streaming import LiveStream
from devloop.types import ChatRequest, CompletionRequest, EmbeddingRequest, Usage

OLLAMA_VERSION = "0.12.6"  # the Ollama API level these endpoints follow
NDJSON = "application/x-ndjson"


class OllamaEmbed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1)
    input: str | list[str] = ""
    prompt: str | None = None  # the legacy /api/embeddings field
    truncate: bool = True
    options: dict[str, Any] = Field(default_factory=dict)
    keep_alive: str | int | float | None = None
    dimensions: int | None = Field(default=None, ge=1)


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


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
    model = known_model(request, body.model)
    if not body.messages:  # Ollama's load (or, with keep_alive 0, unload) request
        return await _load(request, model, body.keep_alive, "message", chat=True)
    req = parse(ChatRequest, chat_request(body, model))
    return await _run(request, req, chat=True)


@endpoint
async def generate(request: Request) -> Response:
    body = parse(OllamaGenerate, await read_json(request))
    model = known_model(request, body.model)
    if not body.prompt and body.suffix is None and not body.images:
        return await _load(request, model, body.keep_alive, "response", chat=False)
    is_chat, fields = generate_request(body, model)
    req: ChatRequest | CompletionRequest = parse(ChatRequest if is_chat else CompletionRequest,
                                                 fields)
    return await _run(request, req, chat=False)


def _unloads(keep_alive: str | int | float | None) -> bool:
    return keep_alive in (0, "0", "0s", "0m", 0.0)


async def _load(request: Request, name: str, keep_alive: Any, field: str, chat: bool
                ) -> Response:
    """Empty messages / prompt: load the model (``keep_alive: 0``: unload it), as Ollama."""
    gw = gateway(request)
    tier, concrete, _ = resolve_model(name, gw.profile)
    tier = tier or gw.router.candidates(
        decide(PolicyInput("chat", name), gw.profile, gw.router.state()))[0]
    model = concrete or gw.profile.tiers[tier].model
    unload = _unloads(keep_alive)
    await gw.router.backends[tier].load(model, unload)
    out: dict[str, Any] = {"model": model, "created_at": now_iso()}
    out[field] = {"role": "assistant", "content": ""} if chat else ""
    out.update(done=True, done_reason="unload" if unload else "load")
    return Response(orjson.dumps(out), media_type="application/json",
                    headers={"X-Devloop-Tier": tier, "X-Devloop-Model": model})


async def _run(request: Request, req: ChatRequest | CompletionRequest, chat: bool) -> Response:
    gw = gateway(request)
    endpoint_kind = "completions" if isinstance(req, CompletionRequest) else "chat"
    ctx = context(request, endpoint_kind, "ollama")
    started = time.perf_counter_ns()
    if req.stream:
        call = await gw.stream(req, ctx)
        return LiveStream(
            ndjson(call, chat, started), media_type=NDJSON,
            headers=stream_headers(call))
    result = await gw.call(req, ctx)
    return Response(orjson.dumps(_final(result, chat, started)), 200,
                    result_headers(result), media_type="application/json")


def _message(text: str, calls: list[dict[str, Any]] | None, extra: dict[str, Any] | None
             ) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": text}
    thinking = (extra or {}).get("reasoning_content")
    if thinking:
        msg["thinking"] = thinking
    tool_calls = ollama_tool_calls(calls)
    if tool_calls:
        msg["tool_calls"] = tool_calls
    return msg


def _final(result: CallResult, chat: bool, started: int) -> dict[str, Any]:
    c = result.completion
    assert c is not None
    # The body names the model that answered (a fallback shows here, not only in a header).
    out: dict[str, Any] = {"model": c.model, "created_at": now_iso()}
    if chat:
        out["message"] = _message(c.text, c.tool_calls, c.message_extra)
    else:
        out["response"] = c.text
        thinking = (c.message_extra or {}).get("reasoning_content")
        if thinking:
            out["thinking"] = thinking
    if c.extra and isinstance(c.extra.get("context"), list):
        out["context"] = c.extra["context"]
    out.update(done=True, done_reason=done_reason(c.finish_reason),
               **counts(c.usage, time.perf_counter_ns() - started))
    return out


async def ndjson(call: StreamCall, chat: bool, started: int) -> AsyncIterator[bytes]:
    """Text as it comes; tool calls whole (Ollama's shape), once their pieces are complete,
    just before the final ``done`` chunk."""
    acc = StreamAccumulator()
    try:
        async for delta in call.deltas():
            acc.add(delta)
            piece: dict[str, Any] = {"model": call.model, "created_at": now_iso()}
            if delta.finish_reason is None:
                if not delta.text and not (delta.extra or {}).get("reasoning_content"):
                    continue  # tool-call pieces are sent whole below
                if chat:
                    piece["message"] = _message(delta.text, None, delta.extra)
                else:
                    piece["response"] = delta.text
                piece["done"] = False
                yield orjson.dumps(piece) + b"\n"
                continue
            calls = acc.tool_calls()
            if calls and chat:
                yield orjson.dumps({**piece, "message": _message("", calls, None),
                                    "done": False}) + b"\n"
            if chat:
                piece["message"] = {"role": "assistant", "content": ""}
            else:
                piece["response"] = ""
            piece.update(done=True, done_reason=done_reason(delta.finish_reason),
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
    check_dimensions(body.dimensions, emb.vectors, result.tier)
    if legacy:
        out: dict[str, Any] = {"embedding": emb.vectors[0]}
    else:
        out = {"model": emb.model, "embeddings": emb.vectors,
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
    await gw.router.discovered()
    cfg = gw.profile.tiers[tier] if tier else None
    entry = _model_entry(name, _backend_of(request, name), now_iso())
    if tier is None:  # routed: what the default tier or a fallback it may use can do
        decision = decide(PolicyInput("chat", name), gw.profile, gw.router.state())
        tiers = [decision.tier, *decision.fallback_chain]
    else:
        tiers = [tier]
    all_caps = [gw.router.caps(t) for t in tiers]
    caps = ["completion"]
    for flag, label in (("tools", "tools"), ("fim", "insert"), ("vision", "vision"),
                        ("embeddings", "embedding")):
        if any(getattr(c, flag) for c in all_caps):
            caps.append(label)
    n_ctx = all_caps[0].context_length
    body = {
        "modelfile": f"# devloop {'tier ' + tier if tier else 'router'}\nFROM {concrete or name}\n",
        "parameters": "", "template": "{{ .Prompt }}", "details": entry["details"],
        "model_info": {"general.architecture": "devloop",
                       **({"devloop.context_length": n_ctx} if n_ctx else {}),
                       "devloop.tier": tier or "auto",
                       "devloop.model": concrete or (cfg.model if cfg else "auto")},
        "capabilities": caps,
        "devloop_capabilities": {t: c.as_dict() for t, c in zip(tiers, all_caps, strict=True)},
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
