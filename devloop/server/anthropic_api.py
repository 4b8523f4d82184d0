"""The Anthropic Messages face: POST /v1/messages (Claude Code) and /v1/messages/count_tokens.

Every call goes through the gateway like /v1/chat/completions: the body is translated to
the internal chat form (routing, cache key, budgets, token counts) and keeps the original
body beside it, so a tier that speaks Anthropic natively receives it unchanged
(devloop/backends/native.py) and its answer comes back unchanged. Other tiers get the chat
form; what they cannot honour is named in ``X-Devloop-Ignored`` (anthropic_translate.py).
"""

from __future__ import annotations

import logging

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from devloop.backends.native import speaks
from devloop.gateway import Gateway
from devloop.routing.policy import resolve_model
from devloop.server.anthropic_stream import MessageStream, message_body
from devloop.server.anthropic_translate import to_chat
from devloop.server.http import (
    context,
    endpoint,
    gateway,
    read_json,
    relay,
    result_headers,
    stream_headers,
)
from devloop.tokens import count_tokens
from devloop.types import NativeCall

log = logging.getLogger("devloop.server.anthropic")
# Client headers a native Anthropic upstream receives as sent (betas, version, session).
FORWARD_PREFIXES = ("anthropic-", "x-claude-code-")


def forward_headers(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.lower().startswith(FORWARD_PREFIXES)}


def native_tier(gw: Gateway, tier: str, model: str, protocol: str) -> bool:
    cfg = gw.profile.tiers.get(tier)
    return cfg is not None and speaks(cfg, model, protocol)


def ignored_header(headers: dict[str, str], ignored: list[str], native: bool, rid: str,
                   tier: str) -> dict[str, str]:
    if ignored and not native:
        also = headers.get("X-Devloop-Ignored")  # fields the gateway served without
        headers["X-Devloop-Ignored"] = ", ".join([*ignored, *([also] if also else [])])[:1000]
        log.info("request %s on tier %s: not honoured by a chat tier: %s", rid, tier,
                 ", ".join(ignored))
    return headers


@endpoint
async def messages(request: Request) -> Response:
    body = await read_json(request)
    req, ignored = to_chat(body)
    req._passthrough = NativeCall("anthropic", body, forward_headers(request))
    gw = gateway(request)
    ctx = context(request, "messages", "anthropic")
    if req.stream:
        call = await gw.stream(req, ctx)
        native = call.cache != "hit" and native_tier(gw, call.tier, call.model, "anthropic")
        headers = ignored_header(stream_headers(call), ignored, native, ctx.request_id, call.tier)
        events = MessageStream(call.request_id, call.model)
        return StreamingResponse(relay(call, native, events), media_type="text/event-stream",
                                 headers=headers)
    result = await gw.call(req, ctx)
    c = result.completion
    assert c is not None
    native = isinstance(c.raw, dict)
    out = c.raw if native else message_body(ctx.request_id, c)
    headers = ignored_header(result_headers(result), ignored, native, ctx.request_id,
                             result.tier)
    return Response(orjson.dumps(out), 200, headers, media_type="application/json")


@endpoint
async def count(request: Request) -> Response:
    """Input tokens of a Messages body (cl100k count of the translated prompt and tools)."""
    body = await read_json(request)
    req, _ = to_chat(body, count_only=True)
    resolve_model(req.model, gateway(request).profile)  # unknown models are a 404 here too
    text = req.prompt_text()
    if req.tools:
        text += orjson.dumps(req.tools).decode()
    n = count_tokens(text) + 3 * len(req.messages)
    return Response(orjson.dumps({"input_tokens": n}), 200, media_type="application/json")


routes = [
    Route("/v1/messages", messages, methods=["POST"]),
    Route("/v1/messages/count_tokens", count, methods=["POST"]),
]
