"""Cascade checks: pure functions over (request, answer) that pass or name a reason.

A cascade route (``escalate_to`` + ``checks`` in the profile) runs these on the first
tier's answer; the first failure escalates the call. Names (DESIGN.md): ``json``,
``json_schema``, ``tool_call``, ``non_empty``, ``complete``, ``max_chars: N``,
``no_refusal`` and ``judge`` (a local verdict, run by devloop/routing/cascade.py, not here).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonschema

from devloop.config import CHECK_NAMES, validate_check
from devloop.types import ChatRequest, Completion, CompletionRequest

Request = ChatRequest | CompletionRequest
__all__ = ["CHECK_NAMES", "validate_check", "first_failure", "run_check", "CheckResult"]
# Below this many tokens of room, `length` is what the client asked for, not a failure.
MIN_ROOM = 64
REFUSAL = re.compile(
    r"\b(I(?:'m| am) (?:sorry|unable|not able)|I can(?:no|')t (?:help|assist|do|provide|answer)"
    r"|as an AI(?: language model)?|I do not have (?:access|the ability)"
    r"|I(?:'m| am) not sure|I don't know)\b", re.IGNORECASE)


@dataclass(slots=True, frozen=True)
class CheckResult:
    check: str
    ok: bool
    reason: str = ""


def check_name(item: str | dict[str, int]) -> str:
    return item if isinstance(item, str) else f"max_chars: {item['max_chars']}"


def _json_text(text: str) -> str:
    """The answer without a Markdown code fence around it (models add them)."""
    m = re.fullmatch(r"\s*```(?:json)?\s*\n(.*?)\n?```\s*", text, re.DOTALL)
    return m.group(1) if m else text


def check_json(req: Request, c: Completion) -> str | None:
    try:
        json.loads(_json_text(c.text))
    except ValueError as exc:
        return f"not valid JSON ({exc.msg} at char {exc.pos})" if isinstance(
            exc, json.JSONDecodeError) else "not valid JSON"
    return None


def requested_schema(req: Request) -> dict[str, Any] | None:
    fmt = getattr(req, "response_format", None) or {}
    if fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema") or {}
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else None


def check_json_schema(req: Request, c: Completion) -> str | None:
    bad = check_json(req, c)
    if bad:
        return bad
    schema = requested_schema(req)
    if schema is None:
        return None  # json_object or no format: valid JSON is all that was asked
    try:
        jsonschema.validate(json.loads(_json_text(c.text)), schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return f"does not fit the schema at {where}: {exc.message[:200]}"
    except jsonschema.SchemaError as exc:
        return f"the requested schema is invalid: {exc.message[:200]}"
    return None


def check_tool_call(req: Request, c: Completion) -> str | None:
    tools = getattr(req, "tools", None) or []
    if not c.tool_calls:
        choice = getattr(req, "tool_choice", None)
        if choice == "required" or isinstance(choice, dict):
            return "no tool call, but the request requires one"
        return None
    declared = {(t.get("function") or {}).get("name"): (t.get("function") or {})
                for t in tools if isinstance(t, dict)}
    for call in c.tool_calls:
        fn = call.get("function") or {}
        name = fn.get("name")
        if name not in declared:
            return f"tool call names {name!r}, which the request did not declare"
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            return f"tool call {name!r}: arguments are not valid JSON"
        params = declared[name].get("parameters")
        if isinstance(params, dict):
            try:
                jsonschema.validate(args, params)
            except jsonschema.ValidationError as exc:
                return f"tool call {name!r}: arguments do not fit its parameters: " \
                       f"{exc.message[:200]}"
            except jsonschema.SchemaError:
                pass  # the client's schema is its own business
    return None


def check_non_empty(req: Request, c: Completion) -> str | None:
    return None if c.text.strip() or c.tool_calls else "empty answer"


def check_complete(req: Request, c: Completion) -> str | None:
    if c.finish_reason != "length":
        return None
    limit = req.token_limit()
    if limit is not None and limit < MIN_ROOM:
        return None  # the client gave little room: a cut-off is what it asked for
    return f"cut off at the token limit ({limit if limit is not None else 'the model limit'})"


def check_no_refusal(req: Request, c: Completion) -> str | None:
    m = REFUSAL.search(c.text[:400])
    return f"refusal or hedging: {m.group(0)!r}" if m else None


CHECKS: dict[str, Callable[[Request, Completion], str | None]] = {
    "json": check_json,
    "json_schema": check_json_schema,
    "tool_call": check_tool_call,
    "non_empty": check_non_empty,
    "complete": check_complete,
    "no_refusal": check_no_refusal,
}


def run_check(item: str | dict[str, int], req: Request, c: Completion) -> CheckResult:
    """One check (``judge`` is not pure: the cascade runs it itself)."""
    name = check_name(item)
    if isinstance(item, dict):
        n = item["max_chars"]
        return CheckResult(name, len(c.text) <= n,
                           "" if len(c.text) <= n else f"{len(c.text)} chars > {n}")
    reason = CHECKS[item](req, c)
    return CheckResult(name, reason is None, reason or "")


def first_failure(checks: tuple[Any, ...] | list[Any], req: Request,
                  c: Completion) -> CheckResult | None:
    """The first pure check that fails, or None; ``judge`` entries are skipped here."""
    for item in checks:
        if item == "judge":
            continue
        result = run_check(item, req, c)
        if not result.ok:
            return result
    return None
