"""A scripted OpenAI-compatible upstream on loopback: answers what a function of the request
body says. For the "production" tier and the judge, whose answers a test must choose
(the embedded model cannot be made to say "agree" or produce a schema on demand)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.helpers import free_port

Reply = Callable[[dict[str, Any]], str]


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else str(content)
    return ""


class ScriptedUpstream:
    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.port = free_port()
        self.bodies: list[dict[str, Any]] = []
        self.webhooks: list[dict[str, Any]] = []  # POST /hook: a Slack-compatible receiver
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="scripted")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def hook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

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
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        loop.run_forever()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "scripted",
                                                              "object": "model"}]})

    async def _hook(self, request: web.Request) -> web.Response:
        self.webhooks.append(await request.json())
        return web.Response(text="ok")

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        text = self.reply(body)
        usage = {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
        return web.json_response({
            "id": f"scripted-{len(self.bodies)}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": usage})
