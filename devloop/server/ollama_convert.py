"""Ollama request bodies -> the canonical (OpenAI-shaped) requests, and answers back.

Every field is honoured or refused: options devloop maps become OpenAI fields; the rest
(``num_ctx``, ``top_k``, ``min_p``, ...), ``think``, ``keep_alive``, ``raw``, ``context``,
``template`` ride along in ``native`` for an Ollama tier to forward (capability routing
refuses them, naming the field, where no allowed tier can honour them). Images become
``image_url`` parts; tool calls get ids and a tool result its ``tool_call_id``.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from devloop.server.errors import APIError

MAPPED = (("temperature", "temperature"), ("top_p", "top_p"), ("seed", "seed"),
          ("num_predict", "max_tokens"), ("stop", "stop"),
          ("presence_penalty", "presence_penalty"), ("frequency_penalty", "frequency_penalty"))
MAPPED_NAMES = {theirs for theirs, _ in MAPPED}


class OllamaMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str
    content: str | None = ""
    images: list[str] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_name: str | None = None
    name: str | None = None
    thinking: str | None = None


class OllamaChat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1)
    messages: list[OllamaMessage] = Field(default_factory=list)
    stream: bool = True
    options: dict[str, Any] | None = None
    format: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    keep_alive: str | int | float | None = None
    think: bool | str | None = None


class OllamaGenerate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1)
    prompt: str | None = ""
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool = False
    stream: bool = True
    options: dict[str, Any] | None = None
    format: str | dict[str, Any] | None = None
    keep_alive: str | int | float | None = None
    images: list[str] | None = None
    think: bool | str | None = None


def sampling(options: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """-> (OpenAI fields devloop maps, the other options kept for an Ollama tier)."""
    options = options or {}
    out: dict[str, Any] = {}
    for theirs, ours in MAPPED:
        if options.get(theirs) is not None:
            out[ours] = options[theirs]
    if isinstance(out.get("max_tokens"), int) and out["max_tokens"] < 1:
        out.pop("max_tokens")  # Ollama's -1 / -2 mean "no limit"
    rest = {k: v for k, v in options.items() if k not in MAPPED_NAMES and v is not None}
    return out, rest


def response_format(fmt: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt}}
    raise APIError(400, f"format: must be \"json\" or a JSON schema object, not {fmt!r}",
                   "invalid_value", "format")


def image_part(data: str) -> dict[str, Any]:
    """Ollama's base64 image -> an OpenAI ``image_url`` part with a data URL."""
    mime = ("image/png" if data.startswith("iVBOR") else "image/jpeg" if data.startswith("/9j/")
            else "image/gif" if data.startswith("R0lG") else "image/webp"
            if data.startswith("UklG") else "image/png")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}


def native_fields(**fields: Any) -> dict[str, Any] | None:
    out = {k: v for k, v in fields.items() if v not in (None, {}, [])}
    return out or None


def chat_request(body: OllamaChat, model: str) -> dict[str, Any]:
    """An /api/chat body -> ChatRequest fields."""
    mapped, rest = sampling(body.options)
    messages: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (call id, function name) awaiting a tool result
    for mi, m in enumerate(body.messages):
        msg: dict[str, Any] = {"role": m.role, "content": m.content or ""}
        if m.images:
            msg["content"] = [*([{"type": "text", "text": m.content}] if m.content else []),
                              *(image_part(i) for i in m.images)]
        if m.tool_calls:
            calls = []
            for i, c in enumerate(m.tool_calls):
                fn = c.get("function") or {}
                call_id = c.get("id") or f"call_{mi}_{i}"
                args = fn.get("arguments", {})
                calls.append({"id": call_id, "type": "function",
                              "function": {"name": fn.get("name"), "arguments": args
                                           if isinstance(args, str)
                                           else orjson.dumps(args).decode()}})
                pending.append((call_id, fn.get("name") or ""))
            msg["tool_calls"] = calls
        if m.role == "tool":
            name = m.tool_name or m.name
            match = next((p for p in pending if name and p[1] == name), None) or (
                pending[0] if pending else None)
            if match is None:
                raise APIError(400, f"messages[{mi}]: a tool result with no tool call before "
                               f"it", "invalid_value", f"messages[{mi}]")
            pending.remove(match)
            msg["tool_call_id"] = match[0]
            if name:
                msg["name"] = name
        if m.thinking:
            msg["reasoning_content"] = m.thinking
        messages.append(msg)
    return {
        "model": model, "messages": messages, "stream": body.stream, "tools": body.tools,
        "response_format": response_format(body.format), **mapped,
        "native": native_fields(options=rest, think=body.think, keep_alive=body.keep_alive),
    }


def generate_request(body: OllamaGenerate, model: str) -> tuple[bool, dict[str, Any]]:
    """An /api/generate body -> (chat?, ChatRequest or CompletionRequest fields).

    ``raw``, a ``suffix``, a ``template`` or a ``context`` make it a completion (the prompt
    as it is); otherwise it is a chat turn (system + user, images as parts)."""
    mapped, rest = sampling(body.options)
    prompt = body.prompt or ""
    if body.raw or body.suffix is not None or body.template or body.context:
        return False, {
            "model": model, "prompt": prompt, "suffix": body.suffix, "stream": body.stream,
            **mapped,
            "native": native_fields(options=rest, raw=body.raw or None, think=body.think,
                                    keep_alive=body.keep_alive, template=body.template,
                                    context=body.context, images=body.images,
                                    system=body.system, format=body.format),
        }
    user: dict[str, Any] = {"role": "user", "content": prompt}
    if body.images:
        user["content"] = [*([{"type": "text", "text": prompt}] if prompt else []),
                           *(image_part(i) for i in body.images)]
    messages = [*([{"role": "system", "content": body.system}] if body.system else []), user]
    return True, {
        "model": model, "messages": messages, "stream": body.stream,
        "response_format": response_format(body.format), **mapped,
        "native": native_fields(options=rest, think=body.think, keep_alive=body.keep_alive),
    }


def ollama_tool_calls(calls: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """OpenAI tool calls -> Ollama's (arguments as an object)."""
    if not calls:
        return None
    out = []
    for c in calls:
        fn = c.get("function") or {}
        args = fn.get("arguments")
        try:
            parsed = orjson.loads(args) if isinstance(args, str) and args else (args or {})
        except orjson.JSONDecodeError:
            parsed = {"__raw__": args}
        out.append({"function": {"name": fn.get("name"), "arguments": parsed}})
    return out


def done_reason(finish: str | None) -> str:
    return "length" if finish == "length" else "stop"
