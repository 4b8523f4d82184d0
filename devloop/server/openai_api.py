"""The OpenAI wire protocol: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from devloop.gateway import StreamCall
from devloop.routing.policy import available_models
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
from devloop.types import ChatRequest, Completion, CompletionRequest, EmbeddingRequest

JSON = "application/json"


def _json(body: dict[str, Any], headers: dict[str, str]) -> Response:
    return Response(orjson.dumps(body), 200, headers, media_type=JSON)


def chat_body(rid: str, c: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": c.text}
    if c.tool_calls:
        message["tool_calls"] = c.tool_calls
    return {
        "id": f"chatcmpl-{rid}", "object": "chat.completion", "created": int(time.time()),
        "model": c.model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": c.finish_reason}],
        "usage": c.usage.as_openai(),
    }


def completion_body(rid: str, c: Completion) -> dict[str, Any]:
    return {
        "id": f"cmpl-{rid}", "object": "text_completion", "created": int(time.time()),
        "model": c.model,
        "choices": [{"index": 0, "text": c.text, "logprobs": None,
                     "finish_reason": c.finish_reason}],
        "usage": c.usage.as_openai(),
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
        return StreamingResponse(
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

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + orjson.dumps({**base, "choices": choices, **extra}) + b"\n\n"

    first = True
    try:
        async for delta in call.deltas():
            if delta.finish_reason is None:
                if chat:
                    d: dict[str, Any] = {"content": delta.text}
                    if first:
                        d["role"] = "assistant"
                    if delta.tool_calls:
                        d["tool_calls"] = delta.tool_calls
                    yield event([{"index": 0, "delta": d, "logprobs": None,
                                  "finish_reason": None}])
                else:
                    yield event([{"index": 0, "text": delta.text, "logprobs": None,
                                  "finish_reason": None}])
                first = False
                continue
            final = ({"index": 0, "delta": {}, "logprobs": None,
                      "finish_reason": delta.finish_reason} if chat else
                     {"index": 0, "text": "", "logprobs": None,
                      "finish_reason": delta.finish_reason})
            yield event([final])
            if include_usage and delta.usage is not None:
                yield event([], usage=delta.usage.as_openai())
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


@endpoint
async def models(request: Request) -> Response:
    gw = gateway(request)
    created = int(gw.settings.home.stat().st_mtime) if gw.settings.home.exists() else 0
    data = [{"id": name, "object": "model", "created": created, "owned_by": "devloop"}
            for name in available_models(gw.profile)]
    return _json({"object": "list", "data": data}, {})


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
    # Clients configured with a base URL without /v1 (some IDE plugins) still work.
    Route("/chat/completions", chat_completions, methods=["POST"]),
    Route("/completions", completions, methods=["POST"]),
    Route("/embeddings", embeddings, methods=["POST"]),
    Route("/models", models, methods=["GET"]),
]
