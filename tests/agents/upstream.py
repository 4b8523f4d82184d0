"""A scripted loopback upstream for protocol shapes the embedded model cannot produce.

It speaks OpenAI chat completions (an OpenAI-compatible tier that calls tools) and the
Anthropic Messages API (a frontier tier that reports prompt-cache usage), and records what
reached it (path, headers, body) so tests can check what devloop sent on.

Chat script: with tools declared and a last user turn containing "use the tool", it calls
the first tool with {"city": "Paris"}; after a tool result it answers "tool said: RESULT";
otherwise it answers "scripted answer: " and the start of the last user turn.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.helpers import free_port

CACHE_READ, CACHE_WRITE, FRESH_INPUT, OUTPUT = 1800, 300, 40, 7
FRONTIER_TEXT = "frontier answer"


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class ScriptedState:
    seen: list[Seen] = field(default_factory=list)


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            return "".join(p.get("text", "") for p in c or [] if isinstance(p, dict))
    return ""


def chat_script(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]] | None]:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return f"tool said: {last.get('content')}", None
    tools = body.get("tools") or []
    if tools and "use the tool" in _last_user_text(messages):
        name = tools[0]["function"]["name"]
        return "", [{"id": "call_scripted_1", "type": "function",
                     "function": {"name": name, "arguments": '{"city": "Paris"}'}}]
    return "scripted answer: " + _last_user_text(messages)[:40], None


class ScriptedUpstream:
    def __init__(self) -> None:
        self.state = ScriptedState()
        self.port = free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="scripted")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ScriptedUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("scripted upstream did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def bodies(self, path: str) -> list[Seen]:
        return [s for s in self.state.seen if s.path == path]

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/responses", self._responses)
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        loop.run_forever()

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body = orjson.loads(await request.read())
        self.state.seen.append(Seen(request.path, dict(request.headers), body))
        return body

    # -- OpenAI chat ----------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        text, calls = chat_script(body)
        finish = "tool_calls" if calls else "stop"
        usage = {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = calls
            return web.json_response({
                "id": "chatcmpl-s", "object": "chat.completion", "created": 1,
                "model": body.get("model"), "usage": usage,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}]})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def chunk(delta: dict[str, Any], finish_reason: str | None = None,
                        **extra: Any) -> None:
            choices = [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
            data = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
                    "model": body.get("model"), "choices": choices, **extra}
            await resp.write(b"data: " + orjson.dumps(data) + b"\n\n")

        await chunk({"role": "assistant", "content": ""})
        if calls:
            call = calls[0]
            await chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                         "function": {"name": call["function"]["name"],
                                                      "arguments": ""}}]})
            for piece in ('{"city": ', '"Paris"}'):
                await chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        else:
            half = len(text) // 2
            for piece in (text[:half], text[half:]):
                await chunk({"content": piece})
        await chunk({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            data = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
                    "model": body.get("model"), "choices": [], "usage": usage}
            await resp.write(b"data: " + orjson.dumps(data) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp

    # -- Anthropic Messages ---------------------------------------------------------------
    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        usage = {"input_tokens": FRESH_INPUT, "cache_read_input_tokens": CACHE_READ,
                 "cache_creation_input_tokens": CACHE_WRITE, "output_tokens": OUTPUT}
        message = {"id": "msg_scripted", "type": "message", "role": "assistant",
                   "model": body.get("model"), "stop_reason": "end_turn", "stop_sequence": None,
                   "content": [{"type": "text", "text": FRONTIER_TEXT}], "usage": usage}
        if not body.get("stream"):
            return web.json_response(message)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        start = {**message, "content": [], "stop_reason": None,
                 "usage": {**usage, "output_tokens": 1}}
        events = [
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("ping", {"type": "ping"}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "frontier "}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "answer"}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": OUTPUT}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        for name, data in events:
            await resp.write(f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n")
        return resp

    # -- OpenAI Responses (a native Responses upstream) -------------------------------------
    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
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
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for data in responses_events(done, item):
            await resp.write(f"event: {data['type']}\ndata: ".encode() + orjson.dumps(data)
                             + b"\n\n")
        return resp


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
