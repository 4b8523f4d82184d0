"""The OpenAI wire protocol: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devloop.gateway import StreamCall
from devloop.routing.policy import available_models, resolve_model
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
from devloop.server.streaming import LiveStream
from devloop.types import ChatRequest, Completion, CompletionRequest, EmbeddingRequest

JSON = "application/json"


def _json(body: dict[str, Any], headers: dict[str, str]) -> Response:
    return Response(orjson.dumps(body), 200, headers, media_type=JSON)


def chat_message(c: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant",
                               "content": c.text if c.text or not c.tool_calls else None}
    if c.tool_calls:
        message["tool_calls"] = c.tool_calls
    message.update(c.message_extra or {})  # refusal, annotations, reasoning_content
    return message


def chat_body(rid: str, c: Completion) -> dict[str, Any]:
    choices = [c, *(c.choices or ())]
    return {
        "id": f"chatcmpl-{rid}", "object": "chat.completion", "created": int(time.time()),
        "model": c.model,
        "choices": [{"index": i, "message": chat_message(x), "logprobs": x.logprobs,
                     "finish_reason": x.finish_reason} for i, x in enumerate(choices)],
        "usage": c.usage.as_openai(),
        **(c.extra or {}),  # system_fingerprint, service_tier, ...
    }


def completion_body(rid: str, c: Completion) -> dict[str, Any]:
    choices = [c, *(c.choices or ())]
    return {
        "id": f"cmpl-{rid}", "object": "text_completion", "created": int(time.time()),
        "model": c.model,
        "choices": [{"index": i, "text": x.text, "logprobs": x.logprobs,
                     "finish_reason": x.finish_reason} for i, x in enumerate(choices)],
        "usage": c.usage.as_openai(),
        **(c.extra or {}),
    }


@endpoint
async def chat_completions(request: Request) -> Response:
    req = parse(ChatRequest, await read_json(request))
    return await _text(request, req, chat=True)


@endpoint
async def completions(request: Request) -> Response:
    req = parse(CompletionRequest, await read_json(request))
    return await _text(request, req, chat=False)


async def _text(request: Request, req: ChatRequest | CompletionRequest, chat: bool) -> Response:
    gw = gateway(request)
    ctx = context(request, "chat" if chat else "completions", "openai")
    if req.stream:
        call = await gw.stream(req, ctx)
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return LiveStream(
            sse(call, chat, include_usage), media_type="text/event-stream",
            headers=stream_headers(call),
        )
    result = await gw.call(req, ctx)
    assert result.completion is not None
    body = (chat_body if chat else completion_body)(ctx.request_id, result.completion)
    return _json(body, result_headers(result))


async def sse(call: StreamCall, chat: bool, include_usage: bool) -> AsyncIterator[bytes]:
    created = int(time.time())
    base: dict[str, Any] = {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{call.request_id}",
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": created, "model": call.model,
    }

    head = b"data: " + orjson.dumps(base)[:-1] + b',"choices":'  # the same bytes, made once

    def event(choices: list[dict[str, Any]], chunk_extra: dict[str, Any] | None,
              **extra: Any) -> bytes:
        if not chunk_extra and not extra:
            return head + orjson.dumps(choices) + b"}\n\n"
        return b"data: " + orjson.dumps({**base, **(chunk_extra or {}), "choices": choices,
                                          **extra}) + b"\n\n"

    first = True
    chunk_extra: dict[str, Any] | None = None
    try:
        async for delta in call.deltas():
            chunk_extra = delta.chunk_extra or chunk_extra  # system_fingerprint, ...
            if delta.finish_reason is None:
                if chat:
                    d: dict[str, Any] = {"content": delta.text
                                         if delta.text or not delta.tool_calls else None}
                    if first:
                        d["role"] = "assistant"
                    if delta.tool_calls:
                        d["tool_calls"] = delta.tool_calls
                    d.update(delta.extra or {})
                    yield event([{"index": 0, "delta": d, "logprobs": delta.logprobs,
                                  "finish_reason": None}], chunk_extra)
                else:
                    yield event([{"index": 0, "text": delta.text, "logprobs": delta.logprobs,
                                  "finish_reason": None}], chunk_extra)
                first = False
                continue
            final = ({"index": 0, "delta": {}, "logprobs": None,
                      "finish_reason": delta.finish_reason} if chat else
                     {"index": 0, "text": "", "logprobs": None,
                      "finish_reason": delta.finish_reason})
            yield event([final], chunk_extra)
            if include_usage and delta.usage is not None:
                yield event([], chunk_extra, usage=delta.usage.as_openai())
    except Exception as exc:  # noqa: BLE001 - a stream that fails ends with an error event
        err = translate(exc)
        yield b"data: " + orjson.dumps(err.openai_body()) + b"\n\n"
    yield b"data: [DONE]\n\n"


@endpoint
async def embeddings(request: Request) -> Response:
    req = parse(EmbeddingRequest, await read_json(request))
    try:
        req.texts()
    except ValueError as exc:
        raise translate(exc) from None
    gw = gateway(request)
    ctx = context(request, "embeddings", "openai")
    result = await gw.embed(req, ctx)
    emb = result.embeddings
    assert emb is not None
    check_dimensions(req.dimensions, emb.vectors, result.tier)
    b64 = req.encoding_format == "base64"
    data = [
        {"object": "embedding", "index": i,
         "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if b64 else v}
        for i, v in enumerate(emb.vectors)
    ]
    body = {"object": "list", "data": data, "model": result.model,
            "usage": {"prompt_tokens": emb.usage.prompt_tokens,
                      "total_tokens": emb.usage.prompt_tokens}}
    return _json(body, result_headers(result))


def model_card(gw: Any, name: str, created: int) -> dict[str, Any]:
    """One model as OpenAI lists it, with what its tier can do (``capabilities``)."""
    card: dict[str, Any] = {"id": name, "object": "model", "created": created,
                            "owned_by": "devloop"}
    tier, _, _ = resolve_model(name, gw.profile)
    if tier is not None:
        caps = gw.router.caps(tier)
        card.update(tier=tier, capabilities=caps.as_dict())
        if caps.context_length:
            card["context_length"] = caps.context_length
    return card


def _created(gw: Any) -> int:
    return int(gw.settings.home.stat().st_mtime) if gw.settings.home.exists() else 0


@endpoint
async def models(request: Request) -> Response:
    gw = gateway(request)
    await gw.router.discovered()
    created = _created(gw)
    data = [model_card(gw, name, created) for name in available_models(gw.profile)]
    return _json({"object": "list", "data": data}, {})


@endpoint
async def model(request: Request) -> Response:
    """GET /v1/models/{id} (the SDK's ``models.retrieve``); ids may contain '/'."""
    gw = gateway(request)
    await gw.router.discovered()
    name = request.path_params["model"]
    resolve_model(name, gw.profile)  # 404 model_not_found listing what is available
    return _json(model_card(gw, name, _created(gw)), {})


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
    Route("/v1/models/{model:path}", model, methods=["GET"]),
    # Clients configured with a base URL without /v1 (some IDE plugins) still work.
    Route("/chat/completions", chat_completions, methods=["POST"]),
    Route("/completions", completions, methods=["POST"]),
    Route("/embeddings", embeddings, methods=["POST"]),
    Route("/models", models, methods=["GET"]),
    Route("/models/{model:path}", model, methods=["GET"]),
]
