"""The Anthropic Messages face: POST /v1/messages (Claude Code) and /v1/messages/count_tokens.

Every call goes through the gateway like /v1/chat/completions: the body is translated to
the internal chat form (routing, cache key, budgets, token counts) and keeps the original
body beside it, so a tier that speaks Anthropic natively receives it unchanged
(devloop/backends/native.py) and its answer comes back unchanged. Other tiers get the chat
form; what they cannot honour is named in ``X-Devloop-Ignored`` (anthropic_translate.py).
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devloop.routing.policy import resolve_model
from devloop.server.anthropic_stream import MessageStream, message_body
from devloop.server.anthropic_translate import to_chat
from devloop.server.http import endpoint, gateway, read_json
from devloop.server.native_face import answer
from devloop.tokens import count_tokens
from devloop.types import NativeCall

# Client headers a native Anthropic upstream receives as sent (betas, version, session).
FORWARD_PREFIXES = ("anthropic-", "x-claude-code-")


def forward_headers(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.lower().startswith(FORWARD_PREFIXES)}


@endpoint
async def messages(request: Request) -> Response:
    body = await read_json(request)
    req, ignored = to_chat(body)
    return await answer(request, req, ignored,
                        NativeCall("anthropic", body, forward_headers(request)), "messages",
                        lambda call: MessageStream(call.request_id, call.model), message_body)


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
