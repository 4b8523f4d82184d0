"""A scripted OpenAI-compatible upstream on loopback: answers what a function of the request
body says. For the "production" tier and the judge, whose answers a test must choose
(the embedded model cannot be made to say "agree" or produce a schema on demand).
It is also a Slack-compatible webhook receiver (POST /hook). The server is
tests/scripted_upstream.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests import scripted_upstream as shared
from tests.scripted_upstream import ScriptedServer, chat_completion, models, usage

Reply = Callable[[dict[str, Any]], str]
CHAT = "/v1/chat/completions"


def last_user_text(body: dict[str, Any]) -> str:
    return shared.last_user_text(body.get("messages"))


class ScriptedUpstream(ScriptedServer):
    """Chat bodies are in ``bodies(CHAT)``, webhook payloads in ``webhooks``."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        super().__init__([("POST", CHAT, self._chat), ("GET", "/v1/models", self._models),
                          ("POST", "/hook", self._hook)])

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hook"

    @property
    def webhooks(self) -> list[dict[str, Any]]:
        return self.bodies("/hook")

    async def _models(self, request: web.Request) -> web.Response:
        return models({"id": "scripted"})

    async def _hook(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.Response(text="ok")

    async def _chat(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        return web.json_response(chat_completion(
            {"role": "assistant", "content": self.reply(body)}, finish="stop",
            model=body.get("model", "scripted"), usage=usage(20, 10),
            id=f"scripted-{self.count(CHAT)}", created=int(time.time())))
