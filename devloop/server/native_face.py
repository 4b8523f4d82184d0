"""What the Anthropic and Responses faces share: the client's body goes through the gateway
in the chat form and is kept whole beside it, so a tier that speaks the protocol natively
(devloop/backends/native.py) receives it unchanged and its answer comes back unchanged;
other tiers' answers are written in the face's shape, and what they could not honour is
named in ``X-Devloop-Ignored``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from devloop.backends.native import speaks
from devloop.gateway import Gateway, StreamCall
from devloop.server.http import (
    EventStream,
    context,
    gateway,
    relay,
    result_headers,
    stream_headers,
)
from devloop.server.streaming import LiveStream
from devloop.types import ChatRequest, Completion, Endpoint, NativeCall

log = logging.getLogger("devloop.server.native_face")


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


async def answer(request: Request, req: ChatRequest, ignored: list[str], native_call: NativeCall,
                 endpoint: Endpoint, events: Callable[[StreamCall], EventStream],
                 body_of: Callable[[str, Completion], dict[str, Any]]) -> Response:
    """Serve ``req`` (translated from ``native_call.body``): ``events`` writes a stream from a
    chat tier in the face's events, ``body_of`` a whole answer in the face's body."""
    req._passthrough = native_call
    protocol = native_call.protocol
    gw = gateway(request)
    ctx = context(request, endpoint, protocol)
    if req.stream:
        call = await gw.stream(req, ctx)
        native = call.cache != "hit" and native_tier(gw, call.tier, call.model, protocol)
        headers = ignored_header(stream_headers(call), ignored, native, ctx.request_id, call.tier)
        return LiveStream(relay(call, native, events(call)), media_type="text/event-stream",
                          headers=headers)
    result = await gw.call(req, ctx)
    c = result.completion
    assert c is not None
    native = isinstance(c.raw, dict)
    out = c.raw if native else body_of(ctx.request_id, c)
    headers = ignored_header(result_headers(result), ignored, native, ctx.request_id,
                             result.tier)
    return Response(orjson.dumps(out), 200, headers, media_type="application/json")
