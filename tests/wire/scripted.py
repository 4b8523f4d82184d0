"""A scripted, tool-capable upstream on loopback speaking both OpenAI and Ollama wire shapes.

The embedded model cannot call tools or see images, so these shapes come from a script:
- the request has tools and its last message is not a tool result -> a call of the first tool,
  its first required argument filled from the user's text (a path or a city);
- the last message is a tool result -> "The tool said: <result>";
- a JSON schema / json format -> a JSON object that fits the test schema;
- an image -> "I see 1 image(s)".
OpenAI streams send a tool call as real pieces (the first with index, id, type and name, then
the arguments in several pieces with only index); Ollama sends ``message.tool_calls`` whole.
Every request body is recorded (``bodies``) so tests assert on what the upstream received.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from typing import Any

import orjson
from aiohttp import web

from tests.helpers import free_port

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"},
                                                "temp": {"type": "integer"}},
               "required": ["city", "temp"], "additionalProperties": False}
LOGPROBS = {"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105],
                         "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]}]}]}


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def _has_image(messages: list[dict[str, Any]]) -> int:
    n = 0
    for m in messages:
        n += len(m.get("images") or ())
        if isinstance(m.get("content"), list):
            n += sum(1 for p in m["content"] if p.get("type") == "image_url")
    return n


def _argument(tool: dict[str, Any], user_text: str) -> dict[str, Any]:
    params = (tool.get("function") or tool).get("parameters") or {}
    props = list((params.get("properties") or {}).keys())
    required = params.get("required") or props[:1]
    if not required:
        return {}
    path = re.search(r"[\w./-]+\.(?:txt|md|py)", user_text)
    value = path.group(0) if path else "Paris"
    return {required[0]: value}


def plan(body: dict[str, Any]) -> dict[str, Any]:
    """What to answer: {"text": ...} or {"call": (name, arguments)}."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    tools = body.get("tools") or []
    if last.get("role") == "tool":
        return {"text": f"The tool said: {_text_of(last.get('content'))}"}
    if tools and body.get("tool_choice") != "none":
        user = next((_text_of(m.get("content")) for m in reversed(messages)
                     if m.get("role") == "user"), "")
        tool = next((t for t in tools
                     if "read" in str((t.get("function") or t).get("name", "")).lower()),
                    tools[0])
        return {"call": ((tool.get("function") or tool)["name"], _argument(tool, user))}
    fmt = body.get("response_format") or {}
    if fmt.get("type") in ("json_schema", "json_object") or body.get("format"):
        return {"text": orjson.dumps({"city": "Paris", "temp": 21}).decode()}
    images = _has_image(messages) + len(body.get("images") or ())
    if images:
        return {"text": f"I see {images} image(s)"}
    return {"text": "Hello from the scripted upstream."}


class ScriptedUpstream:
    def __init__(self) -> None:
        self.port = free_port()
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self.calls = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="scripted")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def last(self, path: str) -> dict[str, Any]:
        return next(b for p, b in reversed(self.bodies) if p == path)

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.bodies if p == path)

    def __enter__(self) -> ScriptedUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("scripted upstream did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai_chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/api/chat", self._ollama_chat)
        app.router.add_post("/api/generate", self._ollama_generate)
        app.router.add_post("/api/show", self._show)
        app.router.add_get("/api/tags", self._tags)
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        loop.run_forever()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body = await request.json()
        self.bodies.append((request.path, body))
        return body

    # -- OpenAI --------------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": "scripted-model", "object": "model", "max_model_len": 32768}]})

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        what = plan(body)
        model = body.get("model", "scripted")
        usage = {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}
        n = int(body.get("n") or 1)
        if not body.get("stream"):
            if "call" in what:
                name, args = what["call"]
                message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_abc123", "type": "function",
                     "function": {"name": name, "arguments": orjson.dumps(args).decode()}}]}
                finish = "tool_calls"
            else:
                message, finish = {"role": "assistant", "content": what["text"],
                                   "refusal": None}, "stop"
            choices = [{"index": i, "message": message, "finish_reason": finish,
                        "logprobs": LOGPROBS if body.get("logprobs") else None}
                       for i in range(n)]
            return web.json_response({
                "id": "chatcmpl-scripted", "object": "chat.completion",
                "created": int(time.time()), "model": model, "choices": choices,
                "usage": usage, "system_fingerprint": "fp_scripted"})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            await resp.write(b"data: " + orjson.dumps({
                "id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0,
                "model": model, "system_fingerprint": "fp_scripted", "choices": choices,
                **extra}) + b"\n\n")

        await send([{"index": 0, "delta": {"role": "assistant", "content": ""},
                     "finish_reason": None}])
        if "call" in what:
            name, args = what["call"]
            text = orjson.dumps(args).decode()
            await send([{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": "call_abc123", "type": "function",
                 "function": {"name": name, "arguments": ""}}]}, "finish_reason": None}])
            for i in range(0, len(text), 5):
                await send([{"index": 0, "delta": {"tool_calls": [
                    {"index": 0, "function": {"arguments": text[i:i + 5]}}]},
                    "finish_reason": None}])
            finish = "tool_calls"
        else:
            words = re.findall(r"\S+\s*", what["text"])
            for w in words:
                await send([{"index": 0, "delta": {"content": w}, "finish_reason": None,
                             "logprobs": LOGPROBS if body.get("logprobs") else None}])
            finish = "stop"
        await send([{"index": 0, "delta": {}, "finish_reason": finish}])
        if (body.get("stream_options") or {}).get("include_usage"):
            await send([], usage=usage)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    # -- Ollama --------------------------------------------------------------------------
    async def _tags(self, request: web.Request) -> web.Response:
        return web.json_response({"models": [{"name": "scripted:latest",
                                              "model": "scripted:latest"}]})

    async def _show(self, request: web.Request) -> web.Response:
        return web.json_response({"capabilities": ["completion", "tools", "vision", "insert"],
                                  "model_info": {"general.architecture": "qwen2",
                                                 "qwen2.context_length": 32768}})

    @staticmethod
    def _counts() -> dict[str, Any]:
        return {"total_duration": 1000, "load_duration": 0, "prompt_eval_count": 20,
                "prompt_eval_duration": 0, "eval_count": 7, "eval_duration": 1000}

    async def _ollama_chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        model = body.get("model", "scripted")
        if not body.get("messages"):
            reason = "unload" if body.get("keep_alive") in (0, "0") else "load"
            return web.json_response({"model": model, "created_at": "2026-01-01T00:00:00Z",
                                      "message": {"role": "assistant", "content": ""},
                                      "done": True, "done_reason": reason})
        what = plan(body)
        msg: dict[str, Any] = {"role": "assistant", "content": what.get("text", "")}
        if "call" in what:
            name, args = what["call"]
            msg["tool_calls"] = [{"function": {"name": name, "arguments": args}}]
        head = {"model": model, "created_at": "2026-01-01T00:00:00Z"}
        if body.get("stream") is False:
            return web.json_response({**head, "message": msg, "done": True,
                                      "done_reason": "stop", **self._counts()})
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        if msg["content"]:
            for w in re.findall(r"\S+\s*", msg["content"]):
                await resp.write(orjson.dumps({**head, "message": {
                    "role": "assistant", "content": w}, "done": False}) + b"\n")
        if "tool_calls" in msg:
            await resp.write(orjson.dumps({**head, "message": {
                "role": "assistant", "content": "", "tool_calls": msg["tool_calls"]},
                "done": False}) + b"\n")
        await resp.write(orjson.dumps({**head, "message": {"role": "assistant", "content": ""},
                                       "done": True, "done_reason": "stop",
                                       **self._counts()}) + b"\n")
        await resp.write_eof()
        return resp

    async def _ollama_generate(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        text = f"generated for {body.get('prompt', '')[:20]!r} raw={body.get('raw', False)}"
        out = {"model": body.get("model"), "created_at": "2026-01-01T00:00:00Z",
               "response": text, "done": True, "done_reason": "stop", "context": [1, 2, 3],
               **self._counts()}
        if body.get("stream") is False:
            return web.json_response(out)
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        await resp.write(orjson.dumps({**out, "done": False, "done_reason": None}) + b"\n")
        await resp.write(orjson.dumps({**out, "response": ""}) + b"\n")
        await resp.write_eof()
        return resp


class Listener:
    """A loopback port that only counts connections (a host that must never be called)."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
