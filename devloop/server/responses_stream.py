"""Internal results -> OpenAI Responses objects and their SSE events."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from devloop.server.errors import APIError
from devloop.types import ChatRequest, Completion, Delta, Usage


def responses_usage(u: Usage | None) -> dict[str, Any]:
    u = u or Usage()
    return {"input_tokens": u.prompt_tokens,
            "input_tokens_details": {"cached_tokens": u.cached_tokens},
            "output_tokens": u.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u.prompt_tokens + u.completion_tokens}


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def call_item(item_id: str, call_id: str, name: str, arguments: str,
              status: str = "completed") -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}


def envelope(rid: str, model: str, req: ChatRequest, body: dict[str, Any], status: str,
             output: list[dict[str, Any]], usage: Usage | None, finish: str | None
             ) -> dict[str, Any]:
    """The response object, echoing the request's settings as OpenAI does."""
    incomplete = status == "incomplete"
    return {
        "id": f"resp_{rid}", "object": "response", "created_at": int(time.time()),
        "status": status, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"), "max_output_tokens": req.max_tokens,
        "model": model, "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
        "store": False, "temperature": req.temperature, "top_p": req.top_p,
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": [t for t in body.get("tools") or [] if t.get("type") == "function"],
        "truncation": "disabled", "metadata": body.get("metadata") or {},
        "user": body.get("user"),
        "usage": responses_usage(usage) if status != "in_progress" else None,
    }


def response_body(rid: str, c: Completion, req: ChatRequest, body: dict[str, Any]
                  ) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if c.text or not c.tool_calls:
        output.append(message_item(f"msg_{rid}", c.text))
    for i, call in enumerate(c.tool_calls or []):
        fn = call.get("function") or {}
        args = fn.get("arguments") or ""
        if not isinstance(args, str):
            args = orjson.dumps(args).decode()
        output.append(call_item(f"fc_{rid}_{i}", call.get("id") or f"call_{uuid.uuid4().hex}",
                                fn.get("name") or "", args))
    status = "incomplete" if c.finish_reason == "length" else "completed"
    return envelope(rid, c.model, req, body, status, output, c.usage, c.finish_reason)


class ResponseStream:
    """Chat deltas -> response.created ... response.completed."""

    def __init__(self, rid: str, model: str, req: ChatRequest, body: dict[str, Any]) -> None:
        self.rid, self.model, self.req, self.body = rid, model, req, body
        self.seq = 0
        self.items: list[dict[str, Any]] = []  # output items in order (added as they start)
        self.text_item: dict[str, Any] | None = None
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> item

    def event(self, kind: str, **data: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def start(self) -> bytes:
        r = envelope(self.rid, self.model, self.req, self.body, "in_progress", [], None, None)
        return self.event("response.created", response=r) + self.event(
            "response.in_progress", response=r)

    def _close_text(self) -> bytes:
        item = self.text_item
        if item is None:
            return b""
        self.text_item = None
        text = "".join(self.text)
        idx = self.items.index(item)
        item.update(message_item(item["id"], text))
        part = item["content"][0]
        return (self.event("response.output_text.done", item_id=item["id"], output_index=idx,
                           content_index=0, text=text, logprobs=[])
                + self.event("response.content_part.done", item_id=item["id"],
                             output_index=idx, content_index=0, part=part)
                + self.event("response.output_item.done", output_index=idx, item=item))

    def delta(self, d: Delta) -> bytes:
        out = b""
        if d.text:
            if self.text_item is None:
                item = {"type": "message", "id": f"msg_{self.rid}_{len(self.items)}",
                        "status": "in_progress", "role": "assistant", "content": []}
                self.items.append(item)
                self.text_item = item
                idx = len(self.items) - 1
                out += self.event("response.output_item.added", output_index=idx, item=item)
                out += self.event("response.content_part.added", item_id=item["id"],
                                  output_index=idx, content_index=0,
                                  part={"type": "output_text", "text": "", "annotations": [],
                                        "logprobs": []})
            self.text.append(d.text)
            out += self.event("response.output_text.delta", item_id=self.text_item["id"],
                              output_index=self.items.index(self.text_item), content_index=0,
                              delta=d.text, logprobs=[])
        for pos, call in enumerate(d.tool_calls or []):
            key = int(call.get("index", pos + len(self.calls)))
            fn = call.get("function") or {}
            if key not in self.calls:
                out += self._close_text()
                item = call_item(f"fc_{self.rid}_{key}", call.get("id") or
                                 f"call_{uuid.uuid4().hex}", fn.get("name") or "", "",
                                 "in_progress")
                self.calls[key] = item
                self.items.append(item)
                out += self.event("response.output_item.added",
                                  output_index=len(self.items) - 1, item=dict(item))
            item = self.calls[key]
            args = fn.get("arguments")
            if args:
                if not isinstance(args, str):
                    args = orjson.dumps(args).decode()
                item["arguments"] += args
                out += self.event("response.function_call_arguments.delta", item_id=item["id"],
                                  output_index=self.items.index(item), delta=args)
        return out

    def finish(self, d: Delta) -> bytes:
        out = self._close_text()
        for item in self.calls.values():
            idx = self.items.index(item)
            item["status"] = "completed"
            out += self.event("response.function_call_arguments.done", item_id=item["id"],
                              output_index=idx, name=item["name"], arguments=item["arguments"])
            out += self.event("response.output_item.done", output_index=idx, item=item)
        if not self.items:  # an empty answer is still one (empty) message
            item = message_item(f"msg_{self.rid}_0", "")
            self.items.append(item)
            out += self.event("response.output_item.added", output_index=0, item=item)
            out += self.event("response.output_item.done", output_index=0, item=item)
        status = "incomplete" if d.finish_reason == "length" else "completed"
        r = envelope(self.rid, self.model, self.req, self.body, status, self.items, d.usage,
                     d.finish_reason)
        return out + self.event(f"response.{status}", response=r)

    def error(self, err: dict[str, Any]) -> bytes:
        r = envelope(self.rid, self.model, self.req, self.body, "failed", self.items, None, None)
        r["error"] = {"code": err.get("code") or err.get("type"), "message": err.get("message")}
        return self.event("response.failed", response=r)

    def failed(self, err: APIError) -> bytes:
        return self.error({"code": err.code or err.type, "message": err.message})
