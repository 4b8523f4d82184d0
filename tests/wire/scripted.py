"""A scripted, tool-capable upstream on loopback speaking both OpenAI and Ollama wire shapes.

The embedded model cannot call tools or see images, so these shapes come from a script:
- the request has tools and its last message is not a tool result -> a call of the first tool,
  its first required argument filled from the user's text (a path or a city);
- the last message is a tool result -> "The tool said: <result>";
- a JSON schema / json format -> a JSON object that fits the test schema;
- an image -> "I see 1 image(s)".
OpenAI streams send a tool call as real pieces (the first with index, id, type and name, then
the arguments in several pieces with only index); Ollama sends ``message.tool_calls`` whole.
Every request body is recorded (``seen``) so tests assert on what the upstream received.
The server is tests/scripted_upstream.py.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import orjson
from aiohttp import web

from tests.scripted_upstream import (
    ScriptedServer,
    chat_chunks,
    chat_completion,
    last_user_text,
    models,
    stream_lines,
    stream_sse,
    text_of,
    usage,
    wants_usage,
)

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"},
                                                "temp": {"type": "integer"}},
               "required": ["city", "temp"], "additionalProperties": False}
LOGPROBS = {"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105],
                         "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]}]}]}


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
        return {"text": f"The tool said: {text_of(last.get('content'))}"}
    if tools and body.get("tool_choice") != "none":
        user = last_user_text(messages)
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


class ScriptedUpstream(ScriptedServer):
    """Bodies are in ``seen`` (``last(path)``, ``count(path)``)."""

    def __init__(self) -> None:
        super().__init__([
            ("POST", "/v1/chat/completions", self._openai_chat),
            ("GET", "/v1/models", self._models),
            ("POST", "/api/chat", self._ollama_chat),
            ("POST", "/api/generate", self._ollama_generate),
            ("POST", "/api/show", self._show),
            ("GET", "/api/tags", self._tags),
        ])

    # -- OpenAI --------------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        return models({"id": "scripted-model", "max_model_len": 32768})

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        what = plan(body)
        model = body.get("model", "scripted")
        billed = usage(20, 7)
        logprobs = {"logprobs": LOGPROBS if body.get("logprobs") else None}
        call = None
        if "call" in what:
            name, args = what["call"]
            text = orjson.dumps(args).decode()
            call = ("call_abc123", name, [text[i:i + 5] for i in range(0, len(text), 5)])
        if not body.get("stream"):
            if call is not None:
                message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [
                    {"id": call[0], "type": "function",
                     "function": {"name": call[1], "arguments": text}}]}
            else:
                message = {"role": "assistant", "content": what["text"], "refusal": None}
            return web.json_response(chat_completion(
                message, model=model, finish="tool_calls" if call else "stop", usage=billed,
                id="chatcmpl-scripted", created=int(time.time()), n=int(body.get("n") or 1),
                choice_extra=logprobs, system_fingerprint="fp_scripted"))
        chunks = chat_chunks(
            model=model, id="chatcmpl-scripted", finish="tool_calls" if call else "stop",
            usage=billed if wants_usage(body) else None, call=call,
            text=[] if call else re.findall(r"\S+\s*", what["text"]), choice_extra=logprobs,
            system_fingerprint="fp_scripted")
        return await stream_sse(request, chunks, done=True)

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
        body = await self.record(request)
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
        end = {**head, "done": True, "done_reason": "stop", **self._counts()}
        if body.get("stream") is False:
            return web.json_response({**end, "message": msg})
        lines = [{**head, "message": {"role": "assistant", "content": w}, "done": False}
                 for w in re.findall(r"\S+\s*", msg["content"])]
        if "tool_calls" in msg:
            lines.append({**head, "message": {"role": "assistant", "content": "",
                                              "tool_calls": msg["tool_calls"]}, "done": False})
        lines.append({**end, "message": {"role": "assistant", "content": ""}})
        return await stream_lines(request, lines)

    async def _ollama_generate(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        text = f"generated for {body.get('prompt', '')[:20]!r} raw={body.get('raw', False)}"
        out = {"model": body.get("model"), "created_at": "2026-01-01T00:00:00Z",
               "response": text, "done": True, "done_reason": "stop", "context": [1, 2, 3],
               **self._counts()}
        if body.get("stream") is False:
            return web.json_response(out)
        return await stream_lines(request, [{**out, "done": False, "done_reason": None},
                                            {**out, "response": ""}])


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
