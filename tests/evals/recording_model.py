"""A scripted OpenAI-compatible model on loopback that records every request it answers.

Used where the embedded model cannot produce the shape a test needs: a judge reply that
quotes JSON before its verdict, a reply cut at max_tokens, byte-exact outputs that two eval
tools must grade alike, a 401. Its answers are a pure function of the request:

- a grading request (it holds "<Rubric>" or promptfoo's rubric prompt): the rubric decides,
  "[judge:pass]" -> a passing verdict, "[judge:quote-fail]" -> the output's JSON quoted
  before a failing verdict, "[judge:none]" -> prose with no verdict; else a failing verdict;
- a prompt holding "SAY<<text>>" answers exactly ``text``;
- a prompt holding "[long]" answers with finish_reason "length";
- anything else answers "echo: " + the last message.
With ``require_key`` set, requests without that bearer key get a 401.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.helpers import free_port

SAY = re.compile(r"SAY<<(.*?)>>", re.S)


def _text(body: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content") or "") for m in body.get("messages") or [])


def answer(body: dict[str, Any]) -> tuple[str, str]:
    """(text, finish_reason) for a chat request."""
    text = _text(body)
    if "<Rubric>" in text or "<rubric>" in text.lower():
        if "[judge:pass]" in text:
            return '{"reason": "meets the rubric", "pass": true, "score": 1.0}', "stop"
        if "[judge:quote-fail]" in text:
            return ('The output {"total": 3} is wrong. '
                    '{"reason": "the total is wrong", "pass": false, "score": 0}'), "stop"
        if "[judge:none]" in text:
            return "I think it is fine, probably.", "stop"
        return '{"reason": "does not meet the rubric", "pass": false, "score": 0.0}', "stop"
    last = str((body.get("messages") or [{}])[-1].get("content") or "")
    if (m := SAY.search(last)) is not None:
        return m.group(1), "stop"
    if "[long]" in last:
        return "this answer goes on and on", "length"
    return f"echo: {last}", "stop"


@dataclass
class RecordingModel:
    require_key: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r.get("_path") == "chat"]

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({**body, "_path": "chat"})
        self.headers.append(dict(request.headers))
        if self.require_key and request.headers.get("Authorization") != (
                f"Bearer {self.require_key}"):
            return web.json_response({"error": {"message": "Incorrect API key provided",
                                                "type": "invalid_request_error",
                                                "code": "invalid_api_key"}}, status=401)
        text, finish = answer(body)
        words = len(_text(body).split())
        return web.json_response({
            "id": f"chatcmpl-rec{len(self.requests)}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "recorded"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": words + 3, "completion_tokens": len(text.split()),
                      "total_tokens": words + 3 + len(text.split())},
        })

    async def _embed(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({**body, "_path": "embeddings"})
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, text in enumerate(inputs):
            digest = hashlib.sha256(str(text).lower().strip().encode()).digest()
            data.append({"object": "embedding", "index": i,
                         "embedding": [b / 255 for b in digest[:16]]})
        return web.json_response({"object": "list", "data": data, "model": body.get("model"),
                                  "usage": {"prompt_tokens": 4, "total_tokens": 4}})

    def start(self) -> RecordingModel:
        self.port = free_port()
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_post("/chat/completions", self._chat)
            app.router.add_post("/v1/embeddings", self._embed)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            loop.run_until_complete(site.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
