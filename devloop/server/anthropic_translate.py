"""Anthropic Messages requests -> the internal OpenAI chat form (devloop/types.py).

Used for tiers that speak chat (embedded, Ollama, OpenAI-compatible servers). A tier that
speaks Anthropic Messages natively gets the client's body unchanged instead (see
devloop/backends/native.py), so nothing here needs to survive that trip.

Rule for fields a chat tier cannot honour (``thinking``, ``cache_control``,
``context_management``, ``output_config.effort``, ``metadata``, ``top_k``, server tools
such as ``web_search_*``): the call goes on without them and every such field is named in
the ``X-Devloop-Ignored`` response header and the server log. Fields this face does not
know are refused with a 400 that names them.
"""

from __future__ import annotations

from typing import Any

import orjson

from devloop.server.tool_fields import bad, function_tool, tool_name, tool_objects
from devloop.types import ChatRequest, Message

# Top-level fields: honoured here, or ignored (named in X-Devloop-Ignored) on chat tiers.
HONOURED = {"model", "max_tokens", "messages", "system", "stop_sequences", "stream",
            "temperature", "top_p", "tools", "tool_choice"}
IGNORED_ON_CHAT = {"thinking", "context_management", "metadata", "top_k", "service_tier",
                   "container", "mcp_servers", "output_config", "inference_geo"}
# Count-tokens bodies have no max_tokens and no sampling fields.
COUNT_FIELDS = {"model", "messages", "system", "tools", "tool_choice", "thinking",
                "context_management", "mcp_servers", "output_config"}
FINISH_TO_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                  "function_call": "tool_use", "content_filter": "refusal"}


class Translation:
    """The chat request and the names of what a chat tier will not see."""

    def __init__(self) -> None:
        self.ignored: list[str] = []
        self.messages: list[Message] = []

    def ignore(self, name: str) -> None:
        if name not in self.ignored:
            self.ignored.append(name)


def to_chat(body: dict[str, Any], count_only: bool = False) -> tuple[ChatRequest, list[str]]:
    """Validate an Anthropic Messages body and translate it; 400 naming the field if bad."""
    t = Translation()
    allowed = COUNT_FIELDS if count_only else HONOURED | IGNORED_ON_CHAT
    for key in body:
        if key not in allowed:
            raise bad(key, "unsupported field on /v1/messages" + (
                "/count_tokens" if count_only else ""))
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model", "required, a non-empty string")
    max_tokens = body.get("max_tokens", 1 if count_only else None)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise bad("max_tokens", "required, an integer >= 1")
    _system(body.get("system"), t)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("messages", "required, a non-empty list")
    for i, msg in enumerate(messages):
        _message(msg, f"messages.{i}", t)
    if not any(m.role != "system" for m in t.messages):
        raise bad("messages", "no user or assistant turn")
    chat: dict[str, Any] = {"model": model, "messages": t.messages, "max_tokens": max_tokens}
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("stream", "must be a boolean")
    chat["stream"] = stream
    for src, dst, hi in (("temperature", "temperature", 1.0), ("top_p", "top_p", 1.0)):
        value = body.get(src)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= hi:
            raise bad(src, f"must be a number between 0 and {hi}")
        chat[dst] = value
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise bad("stop_sequences", "must be a list of non-empty strings")
        if stops:
            chat["stop"] = stops
    tools = _tools(body.get("tools"), t)
    if tools:
        chat["tools"] = tools
    choice = body.get("tool_choice")
    if choice is not None:
        chat.update(_tool_choice(choice, {x["function"]["name"] for x in tools}))
    _ignored_fields(body, chat, t)
    return ChatRequest.model_validate(chat), t.ignored


def _ignored_fields(body: dict[str, Any], chat: dict[str, Any], t: Translation) -> None:
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in (
                "enabled", "disabled", "adaptive"):
            raise bad("thinking", "must be an object with type enabled, adaptive or disabled")
        if thinking.get("type") != "disabled":
            t.ignore("thinking")
    output_config = body.get("output_config")
    if output_config is not None:
        if not isinstance(output_config, dict):
            raise bad("output_config", "must be an object")
        fmt = output_config.get("format")
        if fmt is not None:
            if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(
                    fmt.get("schema"), dict):
                raise bad("output_config.format", "must be {type: json_schema, schema: {...}}")
            chat["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "output", "schema": fmt["schema"], "strict": True}}
        for key in output_config:
            if key != "format":
                t.ignore(f"output_config.{key}")
    for key in ("context_management", "metadata", "top_k", "service_tier", "container",
                "mcp_servers", "inference_geo"):
        if body.get(key) is not None:
            t.ignore(key)


def _text_blocks(value: Any, param: str, t: Translation) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise bad(param, "must be a string or a list of text blocks")
    parts = []
    for i, block in enumerate(value):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(
                block.get("text"), str):
            raise bad(f"{param}.{i}", "must be a text block {type: text, text: ...}")
        if "cache_control" in block:
            t.ignore("cache_control")
        parts.append(block["text"])
    return "\n\n".join(p for p in parts if p)


def _system(system: Any, t: Translation) -> None:
    if system is None:
        return
    text = _text_blocks(system, "system", t)
    if text:
        t.messages.append(Message(role="system", content=text))


def _image(block: dict[str, Any], param: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise bad(f"{param}.source", "required, an object")
    if source.get("type") == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not media.startswith("image/") or not isinstance(
                data, str) or not data:
            raise bad(f"{param}.source", "base64 images need media_type image/* and data")
        url = f"data:{media};base64,{data}"
    elif source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise bad(f"{param}.source.type", "supported image sources are base64 and url")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result(block: dict[str, Any], param: str, t: Translation,
                 images: list[dict[str, Any]]) -> Message:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise bad(f"{param}.tool_use_id", "required, a string")
    content = block.get("content", "")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "image":
                images.append(_image(part, f"{param}.content.{j}"))
            else:
                raise bad(f"{param}.content.{j}", "tool results hold text and image blocks")
            if isinstance(part, dict) and "cache_control" in part:
                t.ignore("cache_control")
        text = "\n".join(texts)
    else:
        raise bad(f"{param}.content", "must be a string or a list of blocks")
    if block.get("is_error"):
        text = f"Error: {text}"
    return Message(role="tool", tool_call_id=call_id, content=text)


def _message(msg: Any, param: str, t: Translation) -> None:
    if not isinstance(msg, dict):
        raise bad(param, "must be an object with role and content")
    role = msg.get("role")
    if role not in ("user", "assistant", "system"):
        raise bad(f"{param}.role", "must be user or assistant")
    for key in msg:
        if key not in ("role", "content"):
            t.ignore(f"messages.{key}")  # Claude Code's per-turn controls (output_config)
    content = msg.get("content")
    if role == "system":
        text = _text_blocks(content if content is not None else "", f"{param}.content", t)
        if text:
            t.messages.append(Message(role="system", content=text))
        return
    if isinstance(content, str):
        t.messages.append(Message(role=role, content=content))
        return
    if not isinstance(content, list):
        raise bad(f"{param}.content", "must be a string or a list of content blocks")
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[Message] = []
    images: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        where = f"{param}.content.{i}"
        kind = block.get("type") if isinstance(block, dict) else None
        if isinstance(block, dict) and "cache_control" in block:
            t.ignore("cache_control")
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise bad(f"{where}.text", "required, a string")
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image" and role == "user":
            parts.append(_image(block, where))
        elif kind == "tool_use" and role == "assistant":
            name, call_id = block.get("name"), block.get("id")
            if not isinstance(name, str) or not name or not isinstance(call_id, str):
                raise bad(where, "tool_use needs id and name")
            calls.append({"id": call_id, "type": "function", "function": {
                "name": name, "arguments": orjson.dumps(block.get("input") or {}).decode()}})
        elif kind == "tool_result" and role == "user":
            results.append(_tool_result(block, where, t, images))
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            t.ignore("thinking blocks")
        else:
            raise bad(f"{where}.type", f"{kind!r} blocks are not supported in {role} turns")
    t.messages.extend(results)
    if images:  # images returned by tools: a user turn right after the tool results
        t.messages.append(Message(role="user", content=images))
    if calls:
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        t.messages.append(Message(role="assistant", content=text or None, tool_calls=calls))
    elif parts:
        simple = all(p["type"] == "text" for p in parts)
        t.messages.append(Message(role=role, content="".join(p["text"] for p in parts)
                                  if simple else parts))
    elif not results:
        t.messages.append(Message(role=role, content=""))


def _tools(tools: Any, t: Translation) -> list[dict[str, Any]]:
    out = []
    for i, tool in tool_objects(tools):
        kind = tool.get("type")
        if kind not in (None, "custom"):
            t.ignore(f"tools.{tool.get('name') or kind}")  # server tools run at Anthropic only
            continue
        name, schema = tool_name(tool, i), tool.get("input_schema")
        if not isinstance(schema, dict):
            raise bad(f"tools.{i}.input_schema", "required, a JSON schema object")
        if "cache_control" in tool:
            t.ignore("cache_control")
        out.append(function_tool(name, schema, tool))
    return out


def _tool_choice(choice: Any, names: set[str]) -> dict[str, Any]:
    kind = choice.get("type") if isinstance(choice, dict) else None
    out: dict[str, Any] = {}
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        name = choice.get("name")
        if name not in names:
            raise bad("tool_choice.name", f"{name!r} is not one of the tools")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise bad("tool_choice", "type must be auto, any, tool or none")
    if kind != "none" and choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False
    return out
