"""Streams in, completions out (and back): nothing a stream carries is lost on the way.

``StreamAccumulator`` watches the deltas a backend streams and builds the whole answer from
them: text, tool calls (OpenAI's streamed pieces merged by ``index``), finish reason, logprobs,
usage and the upstream's extra fields. The cache stores that ``Completion``; ``replay`` turns
it back into deltas in the exact wire shape a live stream has (tool-call pieces with
``index``, ``id``, ``type``), so a cache hit streams what the miss streamed.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from devloop.types import Completion, Delta, Usage


def merge_logprobs(into: dict[str, Any] | None, piece: Any) -> dict[str, Any] | None:
    """Concatenate the lists of two logprobs objects (chat ``content``/``refusal``, or the
    completions API's ``tokens``/``token_logprobs``/``top_logprobs``/``text_offset``)."""
    if not isinstance(piece, dict):
        return into
    if into is None:
        return copy.deepcopy(piece)
    for key, value in piece.items():
        if isinstance(value, list):
            into[key] = [*(into.get(key) or []), *value]
        elif key not in into or into[key] is None:
            into[key] = value
    return into


class StreamAccumulator:
    """Feed every delta to ``add`` (it returns the delta with each tool-call piece indexed);
    ``completion`` then gives the whole answer."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.logprobs: dict[str, Any] | None = None
        self.message_extra: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}
        self._ids: dict[str, int] = {}
        self._last: int | None = None

    def add(self, delta: Delta) -> Delta:
        if delta.text:
            self.parts.append(delta.text)
        if delta.usage is not None:
            self.usage = delta.usage
        if delta.finish_reason:
            self.finish = delta.finish_reason
        if delta.logprobs is not None:
            self.logprobs = merge_logprobs(self.logprobs, delta.logprobs)
        for key, value in (delta.extra or {}).items():
            if isinstance(value, str) and isinstance(self.message_extra.get(key), str):
                self.message_extra[key] += value  # refusal / reasoning text streams in pieces
            elif value is not None:
                self.message_extra[key] = value
        if delta.chunk_extra:
            self.extra.update({k: v for k, v in delta.chunk_extra.items() if v is not None})
        if delta.tool_calls:
            delta.tool_calls = [self._add_call(piece) for piece in delta.tool_calls]
        return delta

    def _index_of(self, piece: dict[str, Any]) -> int:
        index = piece.get("index")
        if isinstance(index, int):
            return index
        call_id = piece.get("id")
        if call_id and call_id in self._ids:
            return self._ids[call_id]
        if call_id or self._last is None:  # a new call without an index: the next one
            return max(self.calls, default=-1) + 1
        return self._last

    def _add_call(self, piece: dict[str, Any]) -> dict[str, Any]:
        index = self._index_of(piece)
        out = {**piece, "index": index}
        fn = piece.get("function") or {}
        call = self.calls.setdefault(index, {"id": None, "type": "function",
                                             "function": {"name": "", "arguments": ""}})
        if piece.get("id"):
            call["id"] = piece["id"]
            self._ids[piece["id"]] = index
        if piece.get("type"):
            call["type"] = piece["type"]
        if fn.get("name"):
            call["function"]["name"] += fn["name"]
        args = fn.get("arguments")
        if isinstance(args, str):
            call["function"]["arguments"] += args
        elif args is not None:  # a whole object (Ollama shape): store it as OpenAI's string
            call["function"]["arguments"] = orjson.dumps(args).decode()
            out["function"] = {**fn, "arguments": call["function"]["arguments"]}
        self._last = index
        return out

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def tool_calls(self) -> list[dict[str, Any]] | None:
        if not self.calls:
            return None
        out = []
        for index in sorted(self.calls):
            call = self.calls[index]
            if not call["id"]:
                call["id"] = f"call_{index}"
            out.append(call)
        return out

    def completion(self, model: str, usage: Usage, tier: str | None = None) -> Completion:
        return Completion(
            self.text, model, self.finish or "stop", usage, self.tool_calls(), self.logprobs,
            self.message_extra or None, self.extra or None, None, tier)


def stream_pieces(calls: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Whole tool calls -> the streamed pieces OpenAI sends for them (one per call)."""
    if not calls:
        return None
    return [{"index": i, "id": c.get("id") or f"call_{i}", "type": c.get("type") or "function",
             "function": {"name": (c.get("function") or {}).get("name") or "",
                          "arguments": (c.get("function") or {}).get("arguments") or ""}}
            for i, c in enumerate(calls)]


def replay(c: Completion) -> list[Delta]:
    """A stored completion as the deltas of a stream: text (with its logprobs and extra
    fields), the tool calls as indexed pieces, then the finish reason with usage."""
    out: list[Delta] = []
    extra = dict(c.message_extra or {})
    if c.text or c.logprobs is not None or extra or not c.tool_calls:
        out.append(Delta(text=c.text, logprobs=c.logprobs, extra=extra or None,
                         chunk_extra=c.extra))
    if c.tool_calls:
        out.append(Delta(tool_calls=stream_pieces(c.tool_calls), chunk_extra=c.extra))
    out.append(Delta(finish_reason=c.finish_reason, usage=c.usage, chunk_extra=c.extra))
    return out
