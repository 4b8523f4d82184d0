"""A counting OpenAI-compatible upstream on loopback, for failure and timing tests only.

Every other test talks to a real model (the embedded tier, or a second devloop). This stub
exists to count what reaches an upstream, to fail on demand (HTTP 500/503, a stream dropped
in the middle) and to hold requests open for a while.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from devloop.tokens import count_tokens
from tests.helpers import free_port


def billed_prompt(body: dict[str, Any]) -> int:
    messages = body.get("messages") or []
    text = sum(count_tokens(str(m.get("content") or "")) for m in messages)
    return math.ceil(text * 1.2) + 3 * len(messages) + 3


@dataclass
class StubState:
    mode: str = "ok"  # ok | error | drop
    status: int = 503  # for mode "error"
    delay: float = 0.0  # seconds before answering
    completion_tokens: int | None = None  # default: max_tokens, else 8
    # None: bill like a provider whose tokenizer counts 20% more than cl100k, plus the
    # per-message framing tokens (OpenAI: 3 a message, 3 to prime the reply).
    prompt_tokens: int | None = None
    chat_requests: int = 0
    model_requests: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


class StubUpstream:
    def __init__(self) -> None:
        self.state = StubState()
        self.port = free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="stub-upstream")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> StubUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("stub upstream did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # -- server -----------------------------------------------------------------------
    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        loop.run_forever()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        self.state.model_requests += 1
        if self.state.mode == "error":
            return web.json_response({"error": {"message": "down"}}, status=self.state.status)
        return web.json_response({"object": "list", "data": [{"id": "stub", "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        s = self.state
        s.chat_requests += 1
        body = await request.json()
        s.bodies.append(body)
        s.in_flight += 1
        s.max_in_flight = max(s.max_in_flight, s.in_flight)
        try:
            if s.delay:
                await asyncio.sleep(s.delay)
            if s.mode == "error":
                return web.json_response({"error": {"message": "stub is failing"}},
                                         status=s.status)
            n = s.completion_tokens or body.get("max_tokens") or 8
            words = [f"w{i} " for i in range(n)]
            prompt = s.prompt_tokens if s.prompt_tokens is not None else billed_prompt(body)
            usage = {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
            if not body.get("stream"):
                return web.json_response({
                    "id": "stub", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "stub"),
                    "choices": [{"index": 0, "finish_reason": "length",
                                 "message": {"role": "assistant", "content": "".join(words)}}],
                    "usage": usage})
            return await self._stream(request, body, words, usage)
        finally:
            s.in_flight -= 1

    async def _stream(self, request: web.Request, body: dict[str, Any], words: list[str],
                      usage: dict[str, int]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        def chunk(**extra: Any) -> bytes:
            return b"data: " + orjson.dumps({"id": "stub", "object": "chat.completion.chunk",
                                             "created": 0, "model": body.get("model", "stub"),
                                             **extra}) + b"\n\n"

        for i, word in enumerate(words):
            if self.state.mode == "drop" and i == 3:
                await asyncio.sleep(0.05)
                assert request.transport is not None
                request.transport.abort()  # the connection dies mid-stream
                return resp
            await resp.write(chunk(choices=[{"index": 0, "delta": {"content": word},
                                             "finish_reason": None}]))
            await asyncio.sleep(0.005)
        await resp.write(chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "length"}]))
        if (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(chunk(choices=[], usage=usage))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
