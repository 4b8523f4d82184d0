"""A scripted provider Batch API on loopback: Anthropic Message Batches (create, retrieve,
results JSONL, cancel) and OpenAI Files + Batches (upload, create, retrieve, file content,
cancel), plus a plain chat endpoint. Every answer echoes the request's last user message, with
fixed usage (1000 tokens in, 100 out) so prices are exact. ``hold`` keeps batches in
progress until released. The server is tests/scripted_upstream.py."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.scripted_upstream import (
    ScriptedServer,
    anthropic_error,
    chat_completion,
    last_user_text,
    openai_error,
    usage,
)

PROMPT_TOKENS, COMPLETION_TOKENS = 1000, 100


def answer(messages: list[dict[str, Any]]) -> str:
    return f"echo: {last_user_text(messages)}"


@dataclass
class BatchState:
    hold: bool = False
    keys: list[str] = field(default_factory=list)  # x-api-key / Authorization seen
    anthropic: dict[str, dict[str, Any]] = field(default_factory=dict)
    openai: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    creates: int = 0
    polls: int = 0
    cancels: int = 0
    chat_requests: int = 0
    batch_requests: list[list[dict[str, Any]]] = field(default_factory=list)


class BatchUpstream(ScriptedServer):
    def __init__(self) -> None:
        self.state = BatchState()
        batches, messages = "/v1/batches", "/v1/messages/batches"
        super().__init__([
            ("POST", messages, self._a_create),
            ("GET", messages + "/{id}", self._a_get),
            ("GET", messages + "/{id}/results", self._a_results),
            ("POST", messages + "/{id}/cancel", self._a_cancel),
            ("POST", "/v1/files", self._o_upload),
            ("GET", "/v1/files/{id}/content", self._o_content),
            ("POST", batches, self._o_create),
            ("GET", batches + "/{id}", self._o_get),
            ("POST", batches + "/{id}/cancel", self._o_cancel),
            ("POST", "/v1/chat/completions", self._chat),
        ], api_root="", name="batch-upstream")

    def _key(self, request: web.Request) -> None:
        self.state.keys.append(request.headers.get("x-api-key")
                               or request.headers.get("Authorization", ""))

    # -- Anthropic Message Batches -------------------------------------------------------
    def _a_obj(self, b: dict[str, Any]) -> dict[str, Any]:
        ended = b["cancelled"] or not self.state.hold
        n = len(b["requests"])
        return {"id": b["id"], "type": "message_batch",
                "processing_status": "ended" if ended else "in_progress",
                "request_counts": {"processing": 0 if ended else n,
                                   "succeeded": 0 if b["cancelled"] or not ended else n,
                                   "errored": 0, "canceled": n if b["cancelled"] else 0,
                                   "expired": 0},
                "created_at": "2026-01-01T00:00:00Z", "ended_at": None,
                "expires_at": "2026-01-02T00:00:00Z", "cancel_initiated_at": None,
                "results_url": f"{self.base_url}/v1/messages/batches/{b['id']}/results"
                if ended else None}

    async def _a_create(self, request: web.Request) -> web.Response:
        self._key(request)
        if request.headers.get("anthropic-version") is None:
            return anthropic_error("invalid_request_error", "anthropic-version missing", 400)
        body = await request.json()
        self.state.creates += 1
        self.state.batch_requests.append(body["requests"])
        b = {"id": f"msgbatch_{uuid.uuid4().hex[:20]}", "requests": body["requests"],
             "cancelled": False}
        self.state.anthropic[b["id"]] = b
        return web.json_response(self._a_obj(b))

    def _a_batch(self, request: web.Request) -> dict[str, Any]:
        b = self.state.anthropic.get(request.match_info["id"])
        if b is None:
            raise web.HTTPNotFound(text=json.dumps({"type": "error", "error": {
                "type": "not_found_error", "message": "no such batch"}}),
                content_type="application/json")
        return b

    async def _a_get(self, request: web.Request) -> web.Response:
        self._key(request)
        self.state.polls += 1
        return web.json_response(self._a_obj(self._a_batch(request)))

    async def _a_cancel(self, request: web.Request) -> web.Response:
        self._key(request)
        b = self._a_batch(request)
        b["cancelled"] = True
        self.state.cancels += 1
        return web.json_response({**self._a_obj(b), "processing_status": "canceling"})

    async def _a_results(self, request: web.Request) -> web.Response:
        self._key(request)
        b = self._a_batch(request)
        lines = []
        for req in b["requests"]:
            if b["cancelled"]:
                result: dict[str, Any] = {"type": "canceled"}
            else:
                p = req["params"]
                result = {"type": "succeeded", "message": {
                    "id": "msg_" + uuid.uuid4().hex[:8], "type": "message", "role": "assistant",
                    "model": p["model"], "stop_reason": "end_turn", "stop_sequence": None,
                    "content": [{"type": "text", "text": answer(p["messages"])}],
                    "usage": {"input_tokens": PROMPT_TOKENS,
                              "output_tokens": COMPLETION_TOKENS}}}
            lines.append(json.dumps({"custom_id": req["custom_id"], "result": result}))
        return web.Response(text="\n".join(lines) + "\n", content_type="application/binary")

    # -- OpenAI Files + Batches ----------------------------------------------------------
    async def _o_upload(self, request: web.Request) -> web.Response:
        self._key(request)
        form = await request.post()
        upload = form["file"]
        data = upload.file.read()  # type: ignore[union-attr]
        file_id = f"file-{uuid.uuid4().hex[:20]}"
        self.state.files[file_id] = data
        return web.json_response({"id": file_id, "object": "file", "bytes": len(data),
                                  "created_at": int(time.time()), "filename": "in.jsonl",
                                  "purpose": str(form.get("purpose", "batch")),
                                  "status": "processed"})

    async def _o_content(self, request: web.Request) -> web.Response:
        self._key(request)
        data = self.state.files.get(request.match_info["id"])
        if data is None:
            return openai_error("no such file", 404)
        return web.Response(body=data, content_type="application/octet-stream")

    def _o_obj(self, b: dict[str, Any]) -> dict[str, Any]:
        if b["status"] == "in_progress" and not self.state.hold:
            out = []
            for line in b["lines"]:
                out.append(json.dumps({"id": "r", "custom_id": line["custom_id"], "error": None,
                                       "response": {"status_code": 200, "request_id": "x",
                                                    "body": self._completion(line["body"])}}))
            file_id = f"file-{uuid.uuid4().hex[:20]}"
            self.state.files[file_id] = ("\n".join(out) + "\n").encode()
            b.update(status="completed", output_file_id=file_id)
        n = len(b["lines"])
        done = b["status"] == "completed"
        return {"id": b["id"], "object": "batch", "endpoint": "/v1/chat/completions",
                "errors": None, "input_file_id": b["input_file_id"],
                "completion_window": "24h", "status": b["status"],
                "output_file_id": b.get("output_file_id"), "error_file_id": None,
                "created_at": int(time.time()), "metadata": b["metadata"],
                "request_counts": {"total": n, "completed": n if done else 0, "failed": 0}}

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        text = answer(body.get("messages") or [])
        return chat_completion({"role": "assistant", "content": text}, model=body.get("model"),
                               finish="stop", usage=usage(PROMPT_TOKENS, COMPLETION_TOKENS),
                               id="chatcmpl-stub", created=int(time.time()))

    async def _o_create(self, request: web.Request) -> web.Response:
        self._key(request)
        body = await request.json()
        data = self.state.files.get(body.get("input_file_id", ""))
        if data is None:
            return openai_error("no such file", 400)
        lines = [json.loads(x) for x in data.decode().splitlines() if x.strip()]
        self.state.creates += 1
        self.state.batch_requests.append(lines)
        b = {"id": f"batch_{uuid.uuid4().hex[:20]}", "lines": lines, "status": "in_progress",
             "input_file_id": body["input_file_id"], "metadata": body.get("metadata")}
        self.state.openai[b["id"]] = b
        return web.json_response({**self._o_obj_pending(b)})

    def _o_obj_pending(self, b: dict[str, Any]) -> dict[str, Any]:
        hold, self.state.hold = self.state.hold, True
        try:
            return self._o_obj(b)
        finally:
            self.state.hold = hold

    async def _o_get(self, request: web.Request) -> web.Response:
        self._key(request)
        self.state.polls += 1
        b = self.state.openai.get(request.match_info["id"])
        if b is None:
            return openai_error("no such batch", 404)
        return web.json_response(self._o_obj(b))

    async def _o_cancel(self, request: web.Request) -> web.Response:
        self._key(request)
        b = self.state.openai.get(request.match_info["id"])
        if b is None:
            return openai_error("no such batch", 404)
        self.state.cancels += 1
        if b["status"] == "in_progress":
            b["status"] = "cancelled"
        return web.json_response(self._o_obj(b))

    # -- a plain chat endpoint (what a batch falls back to) --------------------------------
    async def _chat(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        self.state.chat_requests += 1
        async with self.busy():
            return web.json_response(self._completion(body))
