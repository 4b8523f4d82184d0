"""Cascade checks: pure functions over (request, answer), each with a reason."""

from __future__ import annotations

from typing import Any

import pytest

from devloop.config import ConfigError, Route
from devloop.routing.checks import first_failure, run_check
from devloop.types import ChatRequest, Completion

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}}, "required": ["city"]}}}]


def req(**extra: Any) -> ChatRequest:
    return ChatRequest.model_validate({"model": "auto", "messages": [
        {"role": "user", "content": "hi"}], **extra})


def answer(text: str = "", finish: str = "stop", tool_calls: Any = None) -> Completion:
    return Completion(text, "m", finish, tool_calls=tool_calls)


SCHEMA_REQ = {"response_format": {"type": "json_schema",
                                  "json_schema": {"name": "p", "schema": SCHEMA}}}


@pytest.mark.parametrize("check,request_extra,completion,ok,reason_part", [
    ("json", {}, answer('{"a": 1}'), True, ""),
    ("json", {}, answer("```json\n{\"a\": 1}\n```"), True, ""),
    ("json", {}, answer("Sure! {a: 1}"), False, "not valid JSON"),
    ("json_schema", SCHEMA_REQ, answer('{"name": "Ada", "age": 36}'), True, ""),
    ("json_schema", SCHEMA_REQ, answer('{"name": "Ada"}'), False, "'age' is a required"),
    ("json_schema", SCHEMA_REQ, answer('{"name": "Ada", "age": "x"}'), False, "at age"),
    ("json_schema", SCHEMA_REQ, answer("Ada is 36"), False, "not valid JSON"),
    ("tool_call", {"tools": TOOLS}, answer(tool_calls=[{"type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Paris"}'}}]), True, ""),
    ("tool_call", {"tools": TOOLS}, answer(tool_calls=[{"type": "function", "function": {
        "name": "get_time", "arguments": "{}"}}]), False, "did not declare"),
    ("tool_call", {"tools": TOOLS}, answer(tool_calls=[{"type": "function", "function": {
        "name": "get_weather", "arguments": "{}"}}]), False, "do not fit"),
    ("tool_call", {"tools": TOOLS}, answer(tool_calls=[{"type": "function", "function": {
        "name": "get_weather", "arguments": "{city"}}]), False, "not valid JSON"),
    ("tool_call", {"tools": TOOLS, "tool_choice": "required"}, answer("hi"), False, "requires"),
    ("non_empty", {}, answer("  \n"), False, "empty answer"),
    ("non_empty", {}, answer("x"), True, ""),
    ("complete", {"max_tokens": 500}, answer("x", "length"), False, "cut off"),
    ("complete", {"max_tokens": 8}, answer("x", "length"), True, ""),
    ("complete", {}, answer("x", "stop"), True, ""),
    ("no_refusal", {}, answer("I'm sorry, I can't help with that."), False, "refusal"),
    ("no_refusal", {}, answer("Paris is the capital."), True, ""),
    ({"max_chars": 5}, {}, answer("123456"), False, "6 chars > 5"),
    ({"max_chars": 5}, {}, answer("12345"), True, ""),
])
def test_check(check: Any, request_extra: dict[str, Any], completion: Completion, ok: bool,
               reason_part: str) -> None:
    result = run_check(check, req(**request_extra), completion)
    assert result.ok is ok, result
    assert reason_part in result.reason


def test_first_failure_names_the_check_in_order() -> None:
    r = req(**SCHEMA_REQ, max_tokens=500)
    failed = first_failure(["non_empty", "json_schema", "complete"], r, answer("nope", "length"))
    assert failed is not None and failed.check == "json_schema"
    assert first_failure(["non_empty", "json_schema"], r,
                         answer('{"name": "A", "age": 1}')) is None


@pytest.mark.parametrize("checks,message", [
    (["jsn"], "unknown check 'jsn'"),
    (["max_chars"], "unknown check 'max_chars'"),
    ([{"max_chars": 0}], "max_chars"),
    ([{"min_chars": 3}], "only {max_chars: N}"),
])
def test_bad_checks_are_refused(checks: list[Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        Route(tier="local", checks=checks)


def test_cascade_profile_references_are_checked(tmp_path: Any) -> None:
    from devloop.config import load_profile

    path = tmp_path / "p.yaml"
    path.write_text("name: p\nproduction_model: m\ntiers:\n  embedded: {backend: embedded, "
                    "model: x}\nroutes:\n  - {tier: embedded, escalate_to: shared, "
                    "checks: [json]}\n")
    with pytest.raises(ConfigError, match="routes.0.escalate_to: 'shared' is not a configured"):
        load_profile(path)
