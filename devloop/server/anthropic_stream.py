"""Internal results -> Anthropic Messages responses: the message body and the SSE events."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from devloop.server.anthropic_translate import FINISH_TO_STOP
from devloop.server.errors import APIError, anthropic_body
from devloop.types import Completion, Delta, Usage


def anthropic_usage(u: Usage) -> dict[str, int]:
    """Anthropic counts input without the cache reads and writes; OpenAI's includes them."""
    fresh = max(u.prompt_tokens - u.cached_tokens - u.cache_write_tokens, 0)
    return {"input_tokens": fresh, "output_tokens": u.completion_tokens,
            "cache_read_input_tokens": u.cached_tokens,
            "cache_creation_input_tokens": u.cache_write_tokens}


def tool_input(arguments: Any) -> Any:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_raw_arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def stop_reason(c: Completion | Delta) -> str:
    if c.tool_calls:
        return "tool_use"
    return FINISH_TO_STOP.get(c.finish_reason or "stop", "end_turn")


def reasoning(extra: dict[str, Any] | None) -> str:
    """A chat tier's reasoning text (``reasoning_content``/``reasoning``), for thinking blocks."""
    value = (extra or {}).get("reasoning_content") or (extra or {}).get("reasoning")
    return value if isinstance(value, str) else ""


def message_body(rid: str, c: Completion) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    thought = reasoning(getattr(c, "message_extra", None))
    if thought:
        content.append({"type": "thinking", "thinking": thought, "signature": ""})
    if c.text or not c.tool_calls:
        content.append({"type": "text", "text": c.text})
    for call in c.tool_calls or []:
        fn = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex}",
                        "name": fn.get("name", ""), "input": tool_input(fn.get("arguments"))})
    return {"id": f"msg_{rid}", "type": "message", "role": "assistant", "model": c.model,
            "content": content, "stop_reason": stop_reason(c), "stop_sequence": None,
            "usage": anthropic_usage(c.usage)}


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessageStream:
    """Chat deltas -> Anthropic's event sequence (message_start ... message_stop)."""

    def __init__(self, rid: str, model: str) -> None:
        self.rid, self.model = rid, model
        self.index = -1
        self.open: str | None = None  # "thinking", "text" or "tool_use"
        self.tools: dict[int, int] = {}  # chat tool-call index -> content block index
        self.saw_tool = False

    def start(self) -> bytes:
        message = {"id": f"msg_{self.rid}", "type": "message", "role": "assistant",
                   "model": self.model, "content": [], "stop_reason": None,
                   "stop_sequence": None,
                   "usage": {"input_tokens": 0, "output_tokens": 0,
                             "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}}
        return event("message_start", {"type": "message_start", "message": message}) + event(
            "ping", {"type": "ping"})

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return event("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def _open(self, block: dict[str, Any]) -> bytes:
        out = self._close()
        self.index += 1
        self.open = block["type"]
        return out + event("content_block_start", {"type": "content_block_start",
                                                   "index": self.index, "content_block": block})

    def delta(self, d: Delta) -> bytes:
        out = b""
        thought = reasoning(getattr(d, "extra", None))
        if thought:
            if self.open != "thinking":
                out += self._open({"type": "thinking", "thinking": "", "signature": ""})
            out += event("content_block_delta", {"type": "content_block_delta",
                                                 "index": self.index,
                                                 "delta": {"type": "thinking_delta",
                                                           "thinking": thought}})
        if d.text:
            if self.open != "text":
                out += self._open({"type": "text", "text": ""})
            out += event("content_block_delta", {"type": "content_block_delta",
                                                 "index": self.index,
                                                 "delta": {"type": "text_delta", "text": d.text}})
        for pos, call in enumerate(d.tool_calls or []):
            key = int(call.get("index", pos + len(self.tools)))
            fn = call.get("function") or {}
            if key not in self.tools:
                self.saw_tool = True
                out += self._open({"type": "tool_use",
                                   "id": call.get("id") or f"toolu_{uuid.uuid4().hex}",
                                   "name": fn.get("name") or "", "input": {}})
                self.tools[key] = self.index
            args = fn.get("arguments")
            if args:
                if isinstance(args, dict):
                    args = orjson.dumps(args).decode()
                out += event("content_block_delta", {
                    "type": "content_block_delta", "index": self.tools[key],
                    "delta": {"type": "input_json_delta", "partial_json": args}})
        return out

    def finish(self, d: Delta) -> bytes:
        out = b""
        if self.index < 0:  # an empty answer still has one (empty) text block
            out += self._open({"type": "text", "text": ""})
        out += self._close()
        reason = "tool_use" if self.saw_tool else FINISH_TO_STOP.get(d.finish_reason or "stop",
                                                                      "end_turn")
        usage = anthropic_usage(d.usage) if d.usage is not None else {"output_tokens": 0}
        out += event("message_delta", {"type": "message_delta",
                                       "delta": {"stop_reason": reason, "stop_sequence": None},
                                       "usage": usage})
        return out + event("message_stop", {"type": "message_stop"})

    @staticmethod
    def error(body: dict[str, Any]) -> bytes:
        return event("error", body)

    def failed(self, err: APIError) -> bytes:
        return self.error(anthropic_body(err))
