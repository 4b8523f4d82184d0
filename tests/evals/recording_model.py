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
The server is tests/scripted_upstream.py.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

from aiohttp import web

from tests.scripted_upstream import ScriptedServer, chat_completion, openai_error, usage

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


class RecordingModel(ScriptedServer):
    """What it answered is in ``seen``; ``chat_requests()`` are the chat bodies."""

    def __init__(self, require_key: str | None = None) -> None:
        self.require_key = require_key
        super().__init__([("POST", "/v1/chat/completions", self._chat),
                          ("POST", "/chat/completions", self._chat),
                          ("POST", "/v1/embeddings", self._embed)], name="recording-model")

    def chat_requests(self) -> list[dict[str, Any]]:
        return [s.body for s in self.seen if s.path.endswith("/chat/completions")]

    async def _chat(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        if self.require_key and request.headers.get("Authorization") != (
                f"Bearer {self.require_key}"):
            return openai_error("Incorrect API key provided", 401,
                                type="invalid_request_error", code="invalid_api_key")
        text, finish = answer(body)
        words = len(_text(body).split())
        return web.json_response(chat_completion(
            {"role": "assistant", "content": text}, model=body.get("model", "recorded"),
            finish=finish, usage=usage(words + 3, len(text.split())),
            id=f"chatcmpl-rec{len(self.seen)}", created=int(time.time())))

    async def _embed(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, text in enumerate(inputs):
            digest = hashlib.sha256(str(text).lower().strip().encode()).digest()
            data.append({"object": "embedding", "index": i,
                         "embedding": [b / 255 for b in digest[:16]]})
        return web.json_response({"object": "list", "data": data, "model": body.get("model"),
                                  "usage": {"prompt_tokens": 4, "total_tokens": 4}})
