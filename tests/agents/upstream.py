"""A scripted loopback upstream for protocol shapes the embedded model cannot produce.

It speaks OpenAI chat completions (an OpenAI-compatible tier that calls tools) and the
Anthropic Messages API (a frontier tier that reports prompt-cache usage), and records what
reached it (path, headers, body) so tests can check what devloop sent on. The server is
tests/scripted_upstream.py.

Chat script: with tools declared and a last user turn containing "use the tool", it calls
the first tool with {"city": "Paris"}; after a tool result it answers "tool said: RESULT";
otherwise it answers "scripted answer: " and the start of the last user turn.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.scripted_upstream import (
    ScriptedServer,
    anthropic_events,
    anthropic_message,
    chat_chunks,
    chat_completion,
    last_user_text,
    stream_sse,
    usage,
    wants_usage,
)

CACHE_READ, CACHE_WRITE, FRESH_INPUT, OUTPUT = 1800, 300, 40, 7
FRONTIER_TEXT = "frontier answer"


def chat_script(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]] | None]:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return f"tool said: {last.get('content')}", None
    tools = body.get("tools") or []
    if tools and "use the tool" in last_user_text(messages, sep=""):
        name = tools[0]["function"]["name"]
        return "", [{"id": "call_scripted_1", "type": "function",
                     "function": {"name": name, "arguments": '{"city": "Paris"}'}}]
    return "scripted answer: " + last_user_text(messages, sep="")[:40], None


class ScriptedUpstream(ScriptedServer):
    """What reached it is in ``received(path)`` (path, headers, body)."""

    def __init__(self) -> None:
        super().__init__([("POST", "/v1/chat/completions", self._chat),
                          ("POST", "/v1/messages", self._messages),
                          ("POST", "/v1/responses", self._responses)])

    # -- OpenAI chat ----------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        text, calls = chat_script(body)
        finish = "tool_calls" if calls else "stop"
        billed = usage(20, 5)
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = calls
            return web.json_response(chat_completion(
                message, model=body.get("model"), finish=finish, usage=billed,
                id="chatcmpl-s", created=1))
        call = (calls[0]["id"], calls[0]["function"]["name"],
                ['{"city": ', '"Paris"}']) if calls else None
        half = len(text) // 2
        chunks = chat_chunks(model=body.get("model"), id="chatcmpl-s", finish=finish,
                             usage=billed if wants_usage(body) else None, created=1, call=call,
                             text=[] if calls else [text[:half], text[half:]])
        return await stream_sse(request, chunks, done=True)

    # -- Anthropic Messages ---------------------------------------------------------------
    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        message = anthropic_message(
            id="msg_scripted", model=body.get("model"), text=FRONTIER_TEXT,
            usage={"input_tokens": FRESH_INPUT, "cache_read_input_tokens": CACHE_READ,
                   "cache_creation_input_tokens": CACHE_WRITE, "output_tokens": OUTPUT})
        if not body.get("stream"):
            return web.json_response(message)
        return await stream_sse(request, anthropic_events(message, ["frontier ", "answer"],
                                                          ping=True))

    # -- OpenAI Responses (a native Responses upstream) -------------------------------------
    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        item = {"type": "message", "id": "msg_up", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "responses answer",
                             "annotations": []}]}
        done = {"id": "resp_up", "object": "response", "status": "completed",
                "model": body.get("model"), "output": [item],
                "usage": {"input_tokens": 50, "input_tokens_details": {"cached_tokens": 32},
                          "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0},
                          "total_tokens": 53}}
        if not body.get("stream"):
            return web.json_response(done)
        return await stream_sse(request, [(e["type"], e) for e in responses_events(done, item)])


def responses_events(done: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"type": "response.created", "response": {**done, "status": "in_progress", "output": []}},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**item, "status": "in_progress", "content": []}},
        {"type": "response.output_text.delta", "item_id": "msg_up", "output_index": 0,
         "content_index": 0, "delta": "responses "},
        {"type": "response.output_text.delta", "item_id": "msg_up", "output_index": 0,
         "content_index": 0, "delta": "answer"},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": done},
    ]
