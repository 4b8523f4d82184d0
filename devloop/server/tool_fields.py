"""Reading a client's tool list into chat function tools: what the Anthropic and Responses
faces share (each decides which entries are function tools and where their schema is)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from devloop.server.errors import APIError


def bad(param: str, message: str) -> APIError:
    """A 400 whose message starts with the field it is about."""
    return APIError(400, f"{param}: {message}", "invalid_value", param)


def tool_objects(tools: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """``tools`` as (position, entry) pairs; a 400 naming it when it is not a list of objects."""
    if tools is None:
        return
    if not isinstance(tools, list):
        raise bad("tools", "must be a list")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise bad(f"tools.{i}", "must be an object")
        yield i, tool


def tool_name(tool: dict[str, Any], i: int) -> str:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise bad(f"tools.{i}.name", "required, a string")
    return name


def function_tool(name: str, parameters: dict[str, Any], tool: dict[str, Any]
                  ) -> dict[str, Any]:
    """The chat form of one function tool, with the client's description when it has one."""
    fn: dict[str, Any] = {"name": name, "parameters": parameters}
    if isinstance(tool.get("description"), str):
        fn["description"] = tool["description"]
    return {"type": "function", "function": fn}
