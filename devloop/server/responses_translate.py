"""OpenAI Responses requests -> the internal chat form (devloop/types.py).

For tiers that speak chat. A tier that speaks Responses natively (``openai/...`` on the
frontier tier) gets the client's body unchanged (devloop/backends/native.py).

Rules (README "Codex CLI"): the face is stateless, so ``previous_response_id``,
``conversation``, ``background`` and ``item_reference`` inputs are refused with a 400.
Tools a chat tier cannot run (``web_search``, ``namespace``, ``file_search``, MCP, ...:
Codex sends some on every call) are dropped and named, with the other fields a chat tier
cannot honour (``reasoning``, ``include``, ``prompt_cache_key``, ``client_metadata``,
reasoning items in ``input``), in the ``X-Devloop-Ignored`` header and the server log.
Unknown fields are refused with a 400 that names them.
"""

from __future__ import annotations

from typing import Any

from devloop.server.tool_fields import bad, function_tool, tool_name, tool_objects
from devloop.types import ChatRequest, Message

HONOURED = {"model", "input", "instructions", "tools", "tool_choice", "max_output_tokens",
            "temperature", "top_p", "text", "stream", "parallel_tool_calls", "store", "user",
            "previous_response_id", "conversation", "background", "prompt"}
IGNORED_ON_CHAT = {"reasoning", "include", "prompt_cache_key", "client_metadata", "metadata",
                   "service_tier", "truncation", "safety_identifier", "prompt_cache_retention",
                   "stream_options", "max_tool_calls", "top_logprobs"}
TEXT_PARTS = {"input_text", "output_text", "text", "refusal"}


def to_chat(body: dict[str, Any]) -> tuple[ChatRequest, list[str]]:
    ignored: list[str] = []
    for key in body:
        if key not in HONOURED | IGNORED_ON_CHAT:
            raise bad(key, "unsupported field on /v1/responses")
        if key in IGNORED_ON_CHAT and body[key] is not None:
            ignored.append(key)
    for key, why in (("previous_response_id", "devloop keeps no response state (store is off); "
                      "send the whole conversation in input"),
                     ("conversation", "devloop keeps no conversation state"),
                     ("prompt", "stored prompts are not available; send instructions")):
        if body.get(key) is not None:
            raise bad(key, why)
    if body.get("background"):
        raise bad("background", "background responses are not supported")
    if body.get("store"):
        ignored.append("store")  # answered, but not stored: later references get a 400
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model", "required, a non-empty string")
    messages: list[Message] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise bad("instructions", "must be a string")
        if instructions:
            messages.append(Message(role="system", content=instructions))
    _input(body.get("input"), messages, ignored)
    if not any(m.role != "system" for m in messages):
        raise bad("input", "no user, assistant or tool item")
    chat: dict[str, Any] = {"model": model, "messages": messages}
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("stream", "must be a boolean")
    chat["stream"] = stream
    limit = body.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise bad("max_output_tokens", "must be an integer >= 1")
        chat["max_tokens"] = limit
    for name, hi in (("temperature", 2.0), ("top_p", 1.0)):
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= hi:
                raise bad(name, f"must be a number between 0 and {hi}")
            chat[name] = value
    if body.get("user") is not None:
        if not isinstance(body["user"], str):
            raise bad("user", "must be a string")
        chat["user"] = body["user"]
    tools = _tools(body.get("tools"), ignored)
    if tools:
        chat["tools"] = tools
        if isinstance(body.get("parallel_tool_calls"), bool):
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"], tools)
    fmt = _format(body.get("text"), ignored)
    if fmt is not None:
        chat["response_format"] = fmt
    return ChatRequest.model_validate(chat), ignored


def _text(content: Any, param: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad(param, "must be a string or a list of content parts")
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PARTS:
            text = part.get("text", part.get("refusal"))
            if not isinstance(text, str):
                raise bad(f"{param}.{i}.text", "required, a string")
            parts.append({"type": "text", "text": text})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            raise bad(f"{param}.{i}.type", f"{kind!r} parts are not supported (text and "
                      "input_image with image_url are)")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _input(items: Any, messages: list[Message], ignored: list[str]) -> None:
    if isinstance(items, str):
        if not items:
            raise bad("input", "must not be empty")
        messages.append(Message(role="user", content=items))
        return
    if not isinstance(items, list) or not items:
        raise bad("input", "required, a string or a non-empty list of items")
    for i, item in enumerate(items):
        param = f"input.{i}"
        if not isinstance(item, dict):
            raise bad(param, "must be an object")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise bad(f"{param}.role", "must be user, assistant, system or developer")
            content = _text(item.get("content"), f"{param}.content")
            messages.append(Message(role="system" if role == "developer" else role,
                                    content=content))
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            args = item.get("arguments", "")
            if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(
                    args, str):
                raise bad(param, "function_call needs call_id, name and arguments (a string)")
            call = {"id": call_id, "type": "function",
                    "function": {"name": name, "arguments": args}}
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":
                last.tool_calls = [*(last.tool_calls or []), call]
            else:
                messages.append(Message(role="assistant", content=None, tool_calls=[call]))
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str):
                raise bad(f"{param}.call_id", "required, a string")
            images: list[dict[str, Any]] = []
            if not isinstance(output, str):
                text = _text(output, f"{param}.output")
                if not isinstance(text, str):
                    images = [p for p in text if p["type"] == "image_url"]
                    text = "".join(p.get("text", "") for p in text)
                output = text
            messages.append(Message(role="tool", tool_call_id=call_id, content=output))
            if images:  # images a tool returned (view_image): a user turn right after
                messages.append(Message(role="user", content=images))
        elif kind == "reasoning":
            if "input.reasoning" not in ignored:
                ignored.append("input.reasoning")
        elif kind == "item_reference":
            raise bad(param, "item references need stored responses; send the items themselves")
        else:
            raise bad(f"{param}.type", f"{kind!r} items are not supported (message, "
                      "function_call, function_call_output and reasoning are)")


def _tools(tools: Any, ignored: list[str]) -> list[dict[str, Any]]:
    out = []
    for i, tool in tool_objects(tools):
        kind = tool.get("type")
        if kind != "function":
            label = f"tools.{kind}" + (f":{tool['name']}" if isinstance(tool.get("name"), str)
                                       else "")
            ignored.append(label)  # hosted or namespaced tools only OpenAI runs
            continue
        name = tool_name(tool, i)
        params = tool.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(params, dict):
            raise bad(f"tools.{i}.parameters", "must be a JSON schema object")
        entry = function_tool(name, params, tool)
        if isinstance(tool.get("strict"), bool):
            entry["function"]["strict"] = tool["strict"]
        out.append(entry)
    return out


def _tool_choice(choice: Any, tools: list[dict[str, Any]]) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if name not in {t["function"]["name"] for t in tools}:
            raise bad("tool_choice.name", f"{name!r} is not one of the function tools")
        return {"type": "function", "function": {"name": name}}
    raise bad("tool_choice", "must be auto, none, required or {type: function, name}")


def _format(text: Any, ignored: list[str]) -> dict[str, Any] | None:
    if text is None:
        return None
    if not isinstance(text, dict):
        raise bad("text", "must be an object")
    for key in text:
        if key != "format":
            ignored.append(f"text.{key}")
    fmt = text.get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise bad("text.format.schema", "required, a JSON schema object")
        spec: dict[str, Any] = {"name": fmt.get("name") or "output", "schema": schema}
        if isinstance(fmt.get("strict"), bool):
            spec["strict"] = fmt["strict"]
        return {"type": "json_schema", "json_schema": spec}
    raise bad("text.format.type", "must be text, json_object or json_schema")
