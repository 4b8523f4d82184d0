"""A counting OpenAI-compatible upstream on loopback, for failure and timing tests only.

Every other test talks to a real model (the embedded tier, or a second devloop). This stub
exists to count what reaches an upstream, to fail on demand (HTTP 500/503, a stream dropped
in the middle) and to hold requests open for a while. The server is tests/scripted_upstream.py.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from devloop.tokens import count_tokens
from tests.scripted_upstream import (
    ScriptedServer,
    chat_chunks,
    chat_completion,
    models,
    openai_error,
    stream_sse,
    usage,
    wants_usage,
)

CHAT = "/v1/chat/completions"


def billed_prompt(body: dict[str, Any]) -> int:
    messages = body.get("messages") or []
    text = sum(count_tokens(str(m.get("content") or "")) for m in messages)
    return math.ceil(text * 1.2) + 3 * len(messages) + 3


@dataclass
class StubState:
    mode: str = "ok"  # ok | error | drop
    status: int = 503  # for mode "error"
    delay: float = 0.0  # seconds before answering
    pause: float = 0.005  # seconds between streamed pieces
    completion_tokens: int | None = None  # default: max_tokens, else 8
    # None: bill like a provider whose tokenizer counts 20% more than cl100k, plus the
    # per-message framing tokens (OpenAI: 3 a message, 3 to prime the reply).
    prompt_tokens: int | None = None
    chat_requests: int = 0
    model_requests: int = 0


class StubUpstream(ScriptedServer):
    """Bodies are in ``bodies(CHAT)``; requests served at once in ``max_in_flight``."""

    def __init__(self) -> None:
        self.state = StubState()
        super().__init__([("POST", CHAT, self._chat), ("GET", "/v1/models", self._models)],
                         name="stub-upstream")

    async def _models(self, request: web.Request) -> web.Response:
        self.state.model_requests += 1
        if self.state.mode == "error":
            return openai_error("down", self.state.status)
        return models({"id": "stub"})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        s = self.state
        s.chat_requests += 1
        body = await self.record(request)
        async with self.busy():
            if s.delay:
                await asyncio.sleep(s.delay)
            if s.mode == "error":
                return openai_error("stub is failing", s.status)
            n = s.completion_tokens or body.get("max_tokens") or 8
            words = [f"w{i} " for i in range(n)]
            prompt = s.prompt_tokens if s.prompt_tokens is not None else billed_prompt(body)
            billed = usage(prompt, n)
            model = body.get("model", "stub")
            if not body.get("stream"):
                return web.json_response(chat_completion(
                    {"role": "assistant", "content": "".join(words)}, model=model,
                    finish="length", usage=billed, id="stub", created=int(time.time())))
            chunks = chat_chunks(model=model, id="stub", finish="length", text=words,
                                 role=False, usage=billed if wants_usage(body) else None)
            return await stream_sse(request, chunks, done=True, pause=s.pause,
                                    drop_at=3 if s.mode == "drop" else None)
