"""Breakpoints on the static prefix for providers that need markers; the output limit."""

from __future__ import annotations

from devloop.prompt_caching import (
    add_cache_breakpoints,
    has_markers,
    needs_markers,
    output_limit,
    thinking_budget,
)
from devloop.types import ChatRequest

LONG = "You are a careful reviewer. " * 400
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


def words(text: str) -> int:
    return len(text.split())


def chat(**kw: object) -> ChatRequest:
    body = {"model": "frontier", "messages": [{"role": "system", "content": LONG},
                                               {"role": "user", "content": "hi"}]}
    body.update(kw)
    return ChatRequest.model_validate(body)


def test_marker_goes_on_the_system_prompt_for_anthropic() -> None:
    req = chat()
    out = add_cache_breakpoints(req, "anthropic/claude-sonnet-4-5", words, 1024)
    assert out is not req
    system = out.messages[0].content
    assert isinstance(system, list)
    assert system[-1] == {"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}
    assert out.messages[1].content == "hi"
    assert req.messages[0].content == LONG  # the original is not changed


def test_other_providers_short_prefixes_and_no_system_are_left_alone() -> None:
    req = chat()
    assert add_cache_breakpoints(req, "openai/gpt-4o", words, 1024) is req
    short = chat(messages=[{"role": "system", "content": "Be brief."},
                           {"role": "user", "content": "hi"}])
    assert add_cache_breakpoints(short, "anthropic/claude-sonnet-4-5", words, 1024) is short
    bare = chat(messages=[{"role": "user", "content": LONG}])
    assert add_cache_breakpoints(bare, "anthropic/claude-sonnet-4-5", words, 1024) is bare


def test_tools_only_prefix_marks_the_last_tool() -> None:
    big = {**TOOL, "function": {**TOOL["function"], "description": LONG}}
    req = chat(messages=[{"role": "user", "content": "hi"}], tools=[TOOL, big])
    out = add_cache_breakpoints(req, "claude-sonnet-4-5", words, 1024)
    assert out.tools is not None and out.tools[-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in out.tools[0]


def test_clients_that_mark_their_own_are_left_exactly_as_they_are() -> None:
    marked = chat(messages=[{"role": "system", "content": [
        {"type": "text", "text": LONG, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
        {"role": "user", "content": "hi"}])
    assert has_markers(marked)
    assert add_cache_breakpoints(marked, "anthropic/claude-sonnet-4-5", words, 1024) is marked
    tool_marked = chat(tools=[{**TOOL, "cache_control": {"type": "ephemeral"}}])
    assert add_cache_breakpoints(tool_marked, "anthropic/claude-sonnet-4-5", words) is tool_marked


def test_needs_markers() -> None:
    assert needs_markers("anthropic/claude-sonnet-4-6")
    assert needs_markers("openrouter/anthropic/claude-3.5-sonnet")
    assert not needs_markers("gemini/gemini-2.5-pro") and not needs_markers("gpt-4o")


def test_output_limit_sources_cap_and_thinking() -> None:
    assert output_limit(300, 800, None, 4096) == 300          # the client's
    assert output_limit(None, 800, None, 4096) == 800         # the route's default
    assert output_limit(None, None, None, 4096) == 4096       # the profile's default
    assert output_limit(None, None, 1000, 4096) == 1000       # the route's cap
    assert output_limit(9000, None, 1000, 4096) == 1000
    assert output_limit(None, None, None, 4096, thinking=8000) == 12096
    assert output_limit(9000, None, None, 4096, thinking=8000) == 9000
    req = chat(thinking={"type": "enabled", "budget_tokens": 8000})
    assert thinking_budget(req) == 8000 and thinking_budget(chat()) == 0


def test_worst_case_covers_cache_writes_at_the_requested_ttl() -> None:
    import pytest

    from devloop.config import Profile
    from devloop.instrument import worst_case_cost
    from devloop.pricing import Pricing, lookup_model

    profile = Profile.model_validate({
        "name": "p", "production_model": "anthropic/claude-sonnet-4-5",
        "tiers": {"frontier": {"backend": "litellm", "model": "anthropic/claude-sonnet-4-5"},
                  "embedded": {"backend": "embedded", "model": "smollm2-135m"}},
        "routes": [{"tier": "frontier"}]})
    pricing = Pricing(profile)
    price = lookup_model("anthropic/claude-sonnet-4-5")
    assert price is not None
    sonnet, gpt = "anthropic/claude-sonnet-4-5", "openai/gpt-4o"
    plain = chat()
    assert worst_case_cost(pricing, "frontier", sonnet, plain, 2000, 100) == pytest.approx(
        2000 * 3.75e-6 + 100 * 15e-6)  # every prompt token may be a 5-minute write
    hour = chat(messages=[{"role": "system", "content": [
        {"type": "text", "text": LONG, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
        {"role": "user", "content": "hi"}])
    assert worst_case_cost(pricing, "frontier", sonnet, hour, 2000, 100) == pytest.approx(
        2000 * 6e-6 + 100 * 15e-6)
    assert worst_case_cost(pricing, "frontier", gpt, plain, 2000, 100) == pytest.approx(
        2000 * 2.5e-6 + 100 * 10e-6)  # OpenAI bills no write premium
    assert worst_case_cost(pricing, "embedded", "smollm2-135m", plain, 2000, 100) == 0.0
