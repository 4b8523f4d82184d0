"""The OpenAI Responses face: POST /v1/responses (Codex CLI with ``wire_api = "responses"``).

Stateless: ``store`` is never kept and ``previous_response_id`` is a 400. Calls go through
the gateway in the chat form; a tier that speaks Responses natively (``openai/...``)
receives the client's body unchanged and its answer comes back unchanged.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from devloop.routing.policy import available_models, resolve_model
from devloop.server.anthropic_api import ignored_header, native_tier
from devloop.server.http import (
    context,
    endpoint,
    gateway,
    read_json,
    relay,
    result_headers,
    stream_headers,
)
from devloop.server.responses_stream import ResponseStream, response_body
from devloop.server.responses_translate import to_chat
from devloop.types import NativeCall

# Client headers a native Responses upstream receives as sent.
FORWARD = ("openai-beta", "session_id", "session-id", "originator")


@endpoint
async def responses(request: Request) -> Response:
    body = await read_json(request)
    req, ignored = to_chat(body)
    req._passthrough = NativeCall("responses", body, {k: v for k, v in request.headers.items()
                                                 if k.lower() in FORWARD})
    gw = gateway(request)
    ctx = context(request, "responses", "responses")
    if req.stream:
        call = await gw.stream(req, ctx)
        native = call.cache != "hit" and native_tier(gw, call.tier, call.model, "responses")
        headers = ignored_header(stream_headers(call), ignored, native, ctx.request_id, call.tier)
        events = ResponseStream(call.request_id, call.model, req, body)
        return StreamingResponse(relay(call, native, events), media_type="text/event-stream",
                                 headers=headers)
    result = await gw.call(req, ctx)
    c = result.completion
    assert c is not None
    native = isinstance(c.raw, dict)
    out = c.raw if native else response_body(ctx.request_id, c, req, body)
    headers = ignored_header(result_headers(result), ignored, native, ctx.request_id,
                             result.tier)
    return Response(orjson.dumps(out), 200, headers, media_type="application/json")


@endpoint
async def model_info(request: Request) -> Response:
    """GET /v1/models/{id}: a name the profile resolves (tier, alias, model, glob alias)."""
    name = request.path_params["model_id"]
    gw = gateway(request)
    if name not in available_models(gw.profile):
        resolve_model(name, gw.profile)  # a 404 listing what is available when unknown
    created = int(gw.settings.home.stat().st_mtime) if gw.settings.home.exists() else 0
    body = {"id": name, "object": "model", "created": created, "owned_by": "devloop"}
    return Response(orjson.dumps(body), 200, media_type="application/json")


routes = [
    Route("/v1/responses", responses, methods=["POST"]),
    Route("/responses", responses, methods=["POST"]),
    Route("/v1/models/{model_id:path}", model_info, methods=["GET"]),
]
