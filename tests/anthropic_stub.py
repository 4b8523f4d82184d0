"""A loopback upstream speaking Anthropic's Messages API, caching by exact prefix as
Anthropic does: for protocol shapes the embedded model cannot produce (cache-read and
cache-write usage, 1-hour TTLs) and for asserting what devloop sent upstream.

Caching model (Anthropic's documented behaviour, simplified): the prompt is the sequence
tools, system blocks, message blocks; each block marked ``cache_control`` is a breakpoint.
The longest breakpoint prefix seen before (byte-identical, within its TTL) is read from
the cache; the prefix up to the last breakpoint is written, when it has at least
``min_tokens`` tokens. Unmarked prompts are never cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from devloop.tokens import count_tokens
from tests.scripted_upstream import (
    ScriptedServer,
    anthropic_error,
    anthropic_events,
    anthropic_message,
    stream_sse,
)

TTL = {"5m": 300.0, "1h": 3600.0}


@dataclass
class AnthropicState:
    # Anthropic-shaped usage to answer with verbatim (None: simulate the prefix cache)
    fixed_usage: dict[str, Any] | None = None
    answer_tokens: int | None = None  # None: as many as max_tokens allows (the worst case)
    min_tokens: int = 1024
    status: int = 200                 # anything else: answer with that error
    delay: float = 0.0
    usages: list[dict[str, Any]] = field(default_factory=list)
    cache: dict[str, float] = field(default_factory=dict)  # prefix hash -> expiry


def blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The prompt as Anthropic orders it: tools, system blocks, message content blocks."""
    out: list[dict[str, Any]] = [dict(t) for t in body.get("tools") or ()]
    system = body.get("system")
    if isinstance(system, str):
        out.append({"type": "text", "text": system})
    elif isinstance(system, list):
        out.extend(dict(b) for b in system)
    for m in body.get("messages") or ():
        content = m.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        out.extend({**p, "role": m.get("role")} for p in parts)
    return out


def simulate(state: AnthropicState, body: dict[str, Any], now: float) -> dict[str, int]:
    seq = blocks(body)
    reprs = [json.dumps({k: v for k, v in b.items() if k != "cache_control"}, sort_keys=True)
             for b in seq]
    tokens = [count_tokens(b.get("text") or json.dumps(b.get("input_schema") or b))
              for b in seq]
    total = sum(tokens) + 3
    marks = [i for i, b in enumerate(seq) if "cache_control" in b]
    read = write = 0
    hour = False
    digest = hashlib.sha256()
    hashes = []
    for r in reprs:
        digest.update(r.encode())
        hashes.append(digest.copy().hexdigest())
    for i in reversed(marks):
        if state.cache.get(hashes[i], 0) > now:
            read = sum(tokens[: i + 1])
            break
    for i in marks:
        size = sum(tokens[: i + 1])
        if size < state.min_tokens:
            continue
        name = (seq[i]["cache_control"] or {}).get("ttl", "5m")
        if state.cache.get(hashes[i], 0) <= now and size - read > write:
            write, hour = size - read, name == "1h"
        state.cache[hashes[i]] = now + TTL.get(name, 300.0)  # a read refreshes the TTL too
    return {"input_tokens": total - read - write, "cache_read_input_tokens": read,
            "cache_creation_input_tokens": write,
            "cache_creation": {"ephemeral_5m_input_tokens": 0 if hour else write,
                               "ephemeral_1h_input_tokens": write if hour else 0}}


class AnthropicStub(ScriptedServer):
    """Bodies are in ``bodies()``, the usage each answer reported in ``state.usages``."""

    def __init__(self) -> None:
        self.state = AnthropicState()
        super().__init__([("POST", "/v1/messages", self._messages)], api_root="",
                         name="anthropic-stub")

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        s = self.state
        body = await self.record(request)
        if s.delay:
            await asyncio.sleep(s.delay)
        if s.status != 200:
            return anthropic_error("overloaded_error", "stub is failing", s.status)
        usage = dict(s.fixed_usage) if s.fixed_usage is not None else simulate(
            s, body, time.time())
        n = s.answer_tokens if s.answer_tokens is not None else int(body.get("max_tokens") or 8)
        usage["output_tokens"] = n
        s.usages.append(usage)
        text = " ".join(f"w{i}" for i in range(min(n, 50)))
        message = anthropic_message(id=f"msg_{len(self.seen)}", model=body.get("model", "claude"),
                                    text=text, usage=usage)
        if not body.get("stream"):
            return web.json_response(message)
        return await stream_sse(request, anthropic_events(message, [text]))
