"""The one scripted upstream on loopback, for protocol shapes the embedded model cannot produce
(tool calls, prompt-cache usage, provider batch APIs) and for failures on demand.

``ScriptedServer`` owns the server: its own thread and event loop on a free port, the routes a
suite gives it, a record of what reached it (``seen``: path, headers, body) and a count of the
requests it is serving at once. The wire shapes are written here once too: OpenAI chat
completions and their SSE chunks, Anthropic Messages and their events, NDJSON lines, and each
API's error body. A suite's own module is only its script: which routes, what to answer, what
to fail (tests/routing/stub_upstream.py, tests/anthropic_stub.py, tests/wire/scripted.py,
tests/trust/scripted_upstream.py, tests/batch/batch_upstream.py, tests/agents/upstream.py,
tests/evals/recording_model.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Self

import orjson
from aiohttp import web

from tests.helpers import free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]  # (method, path, handler)
Event = tuple[str | None, dict[str, Any]]  # (SSE event name or None, data)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any


class ScriptedServer:
    """An aiohttp app on loopback serving ``routes``; ``with`` (or start/stop) runs it."""

    def __init__(self, routes: Iterable[Route], *, api_root: str = "/v1",
                 name: str = "scripted-upstream") -> None:
        self.port = free_port()
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._routes = list(routes)
        self._api_root = api_root
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name=name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """Where a client of this API points: the root plus the API's prefix (often /v1)."""
        return self.url + self._api_root

    def start(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{self._thread.name} did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application(client_max_size=64 * 2**20)
        for method, path, handler in self._routes:
            app.router.add_route(method, path, handler)
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        loop.run_forever()

    # -- what reached it ------------------------------------------------------------------
    async def record(self, request: web.Request) -> Any:
        """The request's JSON body, recorded with its path and headers."""
        body = await request.json()
        self.seen.append(Seen(request.path, dict(request.headers), body))
        return body

    def received(self, path: str | None = None) -> list[Seen]:
        return [s for s in self.seen if path is None or s.path == path]

    def bodies(self, path: str | None = None) -> list[Any]:
        return [s.body for s in self.received(path)]

    def last(self, path: str) -> Any:
        return self.bodies(path)[-1]

    def count(self, path: str) -> int:
        return len(self.received(path))

    @asynccontextmanager
    async def busy(self) -> AsyncIterator[None]:
        """Counts the requests served at once (``in_flight``, ``max_in_flight``)."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1


# -- what a request asked ---------------------------------------------------------------
def text_of(content: Any, sep: str = " ") -> str:
    """A message's text: a string, or the text parts of a content list joined by ``sep``."""
    if isinstance(content, list):
        return sep.join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def last_user_text(messages: Sequence[dict[str, Any]] | None, sep: str = " ") -> str:
    for message in reversed(messages or []):
        if message.get("role") == "user":
            return text_of(message.get("content"), sep)
    return ""


# -- OpenAI shapes ----------------------------------------------------------------------
def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def openai_error(message: str, status: int, **fields: Any) -> web.Response:
    return web.json_response({"error": {"message": message, **fields}}, status=status)


def models(*entries: dict[str, Any]) -> web.Response:
    return web.json_response({"object": "list", "data": [{"object": "model", **e}
                                                         for e in entries]})


def chat_completion(message: dict[str, Any], *, model: Any, finish: str, usage: dict[str, int],
                    id: str, created: int, n: int = 1, choice_extra: dict[str, Any] | None = None,
                    **extra: Any) -> dict[str, Any]:
    choices = [{"index": i, "message": message, "finish_reason": finish, **(choice_extra or {})}
               for i in range(n)]
    return {"id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": choices, "usage": usage, **extra}


def chat_chunks(*, model: Any, id: str, finish: str, usage: dict[str, int] | None,
                text: Sequence[str] = (), call: tuple[str, str, Sequence[str]] | None = None,
                role: bool = True, created: int = 0, choice_extra: dict[str, Any] | None = None,
                **extra: Any) -> list[Event]:
    """A streamed chat completion: an opening role chunk, the text pieces (or a tool call:
    (id, name, argument pieces), its first piece naming it, the rest only arguments), the
    finish chunk and, when ``usage`` is given, a usage chunk with no choices."""
    def chunk(choices: list[dict[str, Any]], **more: Any) -> Event:
        return None, {"id": id, "object": "chat.completion.chunk", "created": created,
                      "model": model, **extra, "choices": choices, **more}

    def delta(d: dict[str, Any], finish_reason: str | None = None, **more: Any) -> Event:
        return chunk([{"index": 0, "delta": d, "finish_reason": finish_reason, **more}])

    out = [delta({"role": "assistant", "content": ""})] if role else []
    if call is not None:
        call_id, name, pieces = call
        out.append(delta({"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                                          "function": {"name": name, "arguments": ""}}]}))
        out += [delta({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                for piece in pieces]
    out += [delta({"content": piece}, **(choice_extra or {})) for piece in text]
    out.append(delta({}, finish))
    if usage is not None:
        out.append(chunk([], usage=usage))
    return out


def wants_usage(body: dict[str, Any]) -> dict[str, Any] | None:
    """The chat request's stream_options.include_usage, as chat_chunks's ``usage`` gate."""
    return (body.get("stream_options") or {}).get("include_usage")


# -- Anthropic shapes -------------------------------------------------------------------
def anthropic_error(kind: str, message: str, status: int) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": kind, "message": message}},
                             status=status)


def anthropic_message(*, id: str, model: Any, text: str, usage: dict[str, Any],
                      stop_reason: str = "end_turn") -> dict[str, Any]:
    return {"id": id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}], "stop_reason": stop_reason,
            "stop_sequence": None, "usage": usage}


def anthropic_events(message: dict[str, Any], pieces: Sequence[str], *,
                     ping: bool = False) -> list[Event]:
    """The Messages stream of ``message``, its text sent as ``pieces``."""
    start = {**message, "content": [], "stop_reason": None,
             "usage": {**message["usage"], "output_tokens": 1}}
    events: list[Event] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
    ]
    if ping:
        events.append(("ping", {"type": "ping"}))
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": piece}})
               for piece in pieces]
    return events + [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": message["stop_reason"],
                                     "stop_sequence": None},
                           "usage": {"output_tokens": message["usage"]["output_tokens"]}}),
        ("message_stop", {"type": "message_stop"}),
    ]


# -- streaming --------------------------------------------------------------------------
async def stream_sse(request: web.Request, events: Iterable[Event], *, done: bool = False,
                     pause: float = 0.0, drop_at: int | None = None) -> web.StreamResponse:
    """Server-sent events, ``data: [DONE]`` last when ``done`` (OpenAI's end marker).
    ``drop_at``: the connection dies before that event (a stream cut in the middle)."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i, (name, data) in enumerate(events):
        if i == drop_at:
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.abort()
            return resp
        head = f"event: {name}\n".encode() if name else b""
        await resp.write(head + b"data: " + orjson.dumps(data) + b"\n\n")
        if pause and not await _paused(request, pause):
            return resp  # the client went away during the pause
    if done:
        await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def _paused(request: web.Request, seconds: float) -> bool:
    """Wait ``seconds``; False as soon as the client has closed the connection."""
    end = asyncio.get_running_loop().time() + seconds
    while (left := end - asyncio.get_running_loop().time()) > 0:
        if request.transport is None or request.transport.is_closing():
            return False
        await asyncio.sleep(min(left, 0.05))
    return True


async def stream_lines(request: web.Request, lines: Iterable[dict[str, Any]]) -> web.StreamResponse:
    """Newline-delimited JSON (Ollama's stream)."""
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    for line in lines:
        await resp.write(orjson.dumps(line) + b"\n")
    await resp.write_eof()
    return resp
