"""Translation of what Claude Code and Codex send (bodies captured from 2.1.332 and 0.171.0)
into the chat form, and model names resolving through a profile."""

from __future__ import annotations

import pytest

from devloop.config import Profile
from devloop.routing.policy import ModelNotFound, resolve_model
from devloop.server import anthropic_translate, responses_translate
from devloop.server.errors import APIError

CLAUDE_CODE_BARE = {  # `claude -p "say hi" --bare --system-prompt "You are terse." --tools ""`
    "model": "claude-opus-5-5",
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "say hi",
                                      "cache_control": {"type": "ephemeral"}}]},
        {"role": "system", "content": [], "output_config": {"effort": "medium"}}],
    "system": [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332.0b8;"},
        {"type": "text", "text": "You are a Claude agent.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
    "tools": [],
    "metadata": {"user_id": '{"device_id":"d","session_id":"s"}'},
    "max_tokens": 128000,
    "thinking": {"type": "adaptive", "display": "omitted"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "medium"},
    "stream": True,
}

CODEX = {  # Codex 0.171.0 `codex exec`, cut down (the real one has 40 KB of instructions)
    "model": "gpt-5-codex", "stream": True, "tool_choice": "auto", "parallel_tool_calls": True,
    "reasoning": {"summary": "auto"}, "store": False, "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "01a2", "client_metadata": {"session_id": "01a2"},
    "input": [
        {"type": "message", "id": "msg_1", "role": "developer",
         "content": [{"type": "input_text", "text": "You are a coding agent."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "reasoning", "summary": [], "encrypted_content": "gAAA"},
        {"type": "function_call", "call_id": "c1", "name": "exec_command",
         "arguments": '{"cmd": "ls"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "README.md"},
    ],
    "tools": [
        {"type": "function", "name": "exec_command", "description": "Run a command",
         "strict": False, "parameters": {"type": "object", "properties": {
             "cmd": {"type": "string"}}, "required": ["cmd"]}},
        {"type": "namespace", "name": "multi_agent_v1", "tools": []},
        {"type": "web_search", "external_web_access": False},
    ],
}


def test_claude_code_body() -> None:
    req, ignored = anthropic_translate.to_chat(CLAUDE_CODE_BARE)
    assert [m.role for m in req.messages] == ["system", "user"]
    assert req.messages[0].content.endswith("You are a Claude agent.\n\nYou are terse.")
    assert req.messages[1].content == "say hi"
    assert req.max_tokens == 128000 and req.stream and req.tools is None
    assert ignored == ["cache_control", "messages.output_config", "thinking",
                       "output_config.effort", "context_management", "metadata"]


def test_anthropic_blocks_translate() -> None:
    req, ignored = anthropic_translate.to_chat({
        "model": "m", "max_tokens": 5, "stop_sequences": ["END"], "temperature": 0,
        "tool_choice": {"type": "tool", "name": "f"},
        "tools": [{"name": "f", "input_schema": {"type": "object"}},
                  {"type": "web_search_20250305", "name": "web_search"}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "iVBO"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hm", "signature": "s"},
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "is_error": True,
                 "content": [{"type": "text", "text": "boom"}]},
                {"type": "text", "text": "go on"}]}]})
    m = req.messages
    assert m[0].content[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}
    assert m[1].role == "assistant" and m[1].content == "calling"
    assert m[1].tool_calls == [{"id": "t1", "type": "function",
                                "function": {"name": "f", "arguments": '{"x":1}'}}]
    assert (m[2].role, m[2].tool_call_id, m[2].content) == ("tool", "t1", "Error: boom")
    assert (m[3].role, m[3].content) == ("user", "go on")
    assert req.stop == ["END"] and req.temperature == 0
    assert req.tool_choice == {"type": "function", "function": {"name": "f"}}
    assert [t["function"]["name"] for t in req.tools] == ["f"]
    assert ignored == ["thinking blocks", "tools.web_search"]


@pytest.mark.parametrize("body, param", [
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "bot", "content": "x"}]},
     "messages.0.role"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {}}]}]}, "messages.0.content.0.type"),
    ({"model": "m", "max_tokens": 5, "temperature": 1.5,
      "messages": [{"role": "user", "content": "x"}]}, "temperature"),
    ({"model": "m", "max_tokens": 5, "tool_choice": {"type": "tool", "name": "nope"},
      "messages": [{"role": "user", "content": "x"}]}, "tool_choice.name"),
])
def test_anthropic_bad_bodies_name_the_field(body: dict, param: str) -> None:
    with pytest.raises(APIError) as err:
        anthropic_translate.to_chat(body)
    assert err.value.status == 400 and err.value.param == param


def test_codex_body() -> None:
    req, ignored = responses_translate.to_chat(CODEX)
    roles = [m.role for m in req.messages]
    assert roles == ["system", "user", "assistant", "tool"]
    assert req.messages[0].content == "You are a coding agent."
    assert req.messages[2].tool_calls[0]["function"] == {"name": "exec_command",
                                                          "arguments": '{"cmd": "ls"}'}
    assert req.messages[3].tool_call_id == "c1" and req.messages[3].content == "README.md"
    assert [t["function"]["name"] for t in req.tools] == ["exec_command"]
    assert req.tool_choice == "auto"
    assert ignored == ["reasoning", "include", "prompt_cache_key", "client_metadata",
                       "input.reasoning", "tools.namespace:multi_agent_v1", "tools.web_search"]


@pytest.mark.parametrize("body, param", [
    ({"model": "m", "input": "x", "previous_response_id": "resp_1"}, "previous_response_id"),
    ({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}, "input.0"),
    ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"model": "m", "input": []}, "input"),
    ({"model": "m", "input": "x", "frobnicate": True}, "frobnicate"),
])
def test_responses_bad_bodies_name_the_field(body: dict, param: str) -> None:
    with pytest.raises(APIError) as err:
        responses_translate.to_chat(body)
    assert err.value.status == 400 and err.value.param == param


PROFILE = Profile.model_validate({
    "name": "t", "production_model": "anthropic/claude-sonnet-4-6",
    "tiers": {"local": {"backend": "embedded", "model": "smollm2-135m"},
              "frontier": {"backend": "litellm", "model": "anthropic/claude-sonnet-4-6",
                           "models": ["anthropic/claude-haiku-4-5"]}},
    "aliases": {"claude-haiku-4-5": "local", "claude-*haiku*": "local", "claude-*": "frontier"},
})


@pytest.mark.parametrize("model, tier, concrete", [
    ("claude-sonnet-4-6", "frontier", "anthropic/claude-sonnet-4-6"),  # without the prefix
    ("anthropic/claude-sonnet-4-6", "frontier", "anthropic/claude-sonnet-4-6"),
    ("claude-haiku-4-5", "local", None),  # an exact alias beats the prefix match
    ("claude-haiku-4-5-20251001", "local", None),  # glob aliases, in order
    ("claude-opus-5-5", "frontier", None),
])
def test_agent_model_names_resolve(model: str, tier: str, concrete: str | None) -> None:
    got_tier, got_model, _ = resolve_model(model, PROFILE)
    assert (got_tier, got_model) == (tier, concrete)


def test_unknown_names_still_404() -> None:
    with pytest.raises(ModelNotFound):
        resolve_model("gpt-5-codex", PROFILE)


def test_tool_output_images_follow_as_a_user_turn() -> None:
    req, _ = responses_translate.to_chat({"model": "m", "input": [
        {"type": "function_call", "call_id": "c1", "name": "view_image", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [
            {"type": "input_text", "text": "the image:"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBO"}]}]})
    assert [m.role for m in req.messages] == ["assistant", "tool", "user"]
    assert req.messages[1].content == "the image:"
    assert req.messages[2].content == [{"type": "image_url",
                                        "image_url": {"url": "data:image/png;base64,iVBO"}}]
