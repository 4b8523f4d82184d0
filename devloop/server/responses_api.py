"""The OpenAI Responses face: POST /v1/responses (Codex CLI with ``wire_api = "responses"``).

Stateless: ``store`` is never kept and ``previous_response_id`` is a 400. Calls go through
the gateway in the chat form; a tier that speaks Responses natively (``openai/...``)
receives the client's body unchanged and its answer comes back unchanged.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devloop.server.http import endpoint, read_json
from devloop.server.native_face import answer
from devloop.server.responses_stream import ResponseStream, response_body
from devloop.server.responses_translate import to_chat
from devloop.types import NativeCall

# Client headers a native Responses upstream receives as sent.
FORWARD = ("openai-beta", "session_id", "session-id", "originator")


@endpoint
async def responses(request: Request) -> Response:
    body = await read_json(request)
    req, ignored = to_chat(body)
    forward = {k: v for k, v in request.headers.items() if k.lower() in FORWARD}
    return await answer(
        request, req, ignored, NativeCall("responses", body, forward), "responses",
        lambda call: ResponseStream(call.request_id, call.model, req, body),
        lambda rid, c: response_body(rid, c, req, body))


routes = [
    Route("/v1/responses", responses, methods=["POST"]),
    Route("/responses", responses, methods=["POST"]),
]
