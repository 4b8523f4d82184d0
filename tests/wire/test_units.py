"""Pure pieces of wire fidelity, tested with tables: the stream accumulator, replay, the cache
codec, capability needs and capability routing, forbidden fields, GGUF metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devloop.accumulate import StreamAccumulator, replay
from devloop.cache import decode_completion, encode_completion
from devloop.routing.capabilities import CapabilityError, Need, needs, route_capable
from devloop.security import forbidden_field
from devloop.types import Capabilities, ChatRequest, Completion, Delta, RouteDecision, Usage

PIECES = [
    Delta(text="", tool_calls=[{"index": 0, "id": "call_a", "type": "function",
                                "function": {"name": "get_weather", "arguments": ""}}]),
    Delta(tool_calls=[{"index": 0, "function": {"arguments": '{"ci'}}]),
    Delta(tool_calls=[{"index": 1, "id": "call_b", "type": "function",
                       "function": {"name": "get_time", "arguments": "{}"}}]),
    Delta(tool_calls=[{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]),
    Delta(logprobs={"content": [{"token": "a", "logprob": -1.0}]}, chunk_extra={
        "system_fingerprint": "fp1"}),
    Delta(logprobs={"content": [{"token": "b", "logprob": -2.0}]}),
    Delta(finish_reason="tool_calls", usage=Usage(10, 5)),
]


def test_accumulator_merges_tool_call_pieces_by_index() -> None:
    acc = StreamAccumulator()
    for d in PIECES:
        acc.add(d)
    c = acc.completion("m", acc.usage or Usage(), "shared")
    assert c.finish_reason == "tool_calls" and c.tier == "shared"
    assert c.tool_calls == [
        {"id": "call_a", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]
    assert [t["token"] for t in c.logprobs["content"]] == ["a", "b"]
    assert c.extra == {"system_fingerprint": "fp1"}
    assert (c.usage.prompt_tokens, c.usage.completion_tokens) == (10, 5)


def test_pieces_without_index_get_one() -> None:
    acc = StreamAccumulator()
    first = acc.add(Delta(tool_calls=[{"id": "x", "function": {"name": "f", "arguments": "{"}}]))
    more = acc.add(Delta(tool_calls=[{"function": {"arguments": "}"}}]))
    second = acc.add(Delta(tool_calls=[{"id": "y", "function": {"name": "g",
                                                                "arguments": {"a": 1}}}]))
    assert [p["index"] for d in (first, more, second) for p in d.tool_calls or ()] == [0, 0, 1]
    calls = acc.tool_calls()
    assert calls is not None
    assert calls[0]["function"]["arguments"] == "{}"
    assert json.loads(calls[1]["function"]["arguments"]) == {"a": 1}


def test_replay_streams_what_was_stored_and_round_trips_through_the_cache() -> None:
    acc = StreamAccumulator()
    for d in PIECES:
        acc.add(d)
    stored = decode_completion(encode_completion(acc.completion("m", Usage(10, 5), "local")))
    assert stored.tier == "local" and stored.extra == {"system_fingerprint": "fp1"}
    again = StreamAccumulator()
    for d in replay(stored):
        for piece in d.tool_calls or ():
            assert {"index", "id", "type", "function"} <= set(piece)
        again.add(d)
    assert again.completion("m", Usage(10, 5), "local") == stored


def test_cache_keeps_choices_and_message_extras() -> None:
    c = Completion("a", "m", "stop", Usage(1, 2), None, None, {"refusal": "no"}, None,
                   [Completion("b", "m")], "shared")
    assert decode_completion(encode_completion(c)) == c


CAPS = {"local": Capabilities(tools=True, vision=True, ollama_native=True, max_n=1),
        "embedded": Capabilities(tools=False, vision=False, max_n=1, context_length=100,
                                 options=frozenset({"top_k"})),
        "shared": Capabilities(tools=True, vision=True, max_n=16, logprobs=True,
                               passthrough=True)}
TEXT = [{"role": "user", "content": "hi"}]
IMG = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {}}}]


def decision(tier: str, chain: list[str]) -> RouteDecision:
    return RouteDecision(tier, tier + "-model", "route 1", chain)


@pytest.mark.parametrize(("tier", "chain", "body", "served", "rest"), [
    ("embedded", ["local"], {"tools": TOOLS}, "local", []),
    ("local", ["embedded", "shared"], {"n": 2}, "shared", []),
    ("local", ["embedded", "shared"], {"messages": IMG}, "local", ["shared"]),
    ("embedded", [], {"native": {"options": {"top_k": 3, "temperature": 0}}}, "embedded", []),
    ("local", ["embedded", "shared"], {"logprobs": True}, "shared", []),
    ("local", ["embedded", "shared"], {"vendor_field": 1}, "shared", []),
    ("local", ["embedded", "shared"], {"metadata": {"a": "b"}}, "local", ["embedded", "shared"]),
    ("local", ["embedded", "shared"], {"tools": TOOLS, "tool_choice": "none"}, "local",
     ["embedded", "shared"]),
])
def test_capability_routing(tier: str, chain: list[str], body: dict[str, object], served: str,
                            rest: list[str]) -> None:
    req = ChatRequest.model_validate({"model": "auto", "messages": TEXT, **body})
    out = route_capable(decision(tier, chain), needs(req), CAPS.__getitem__,
                        lambda t: t + "-model")
    assert (out.tier, out.fallback_chain) == (served, rest)
    if served != tier:
        assert f"{tier} lacks" in out.reason and out.model == served + "-model"


def test_a_fallback_that_cannot_call_tools_stays_last_for_auto_tools() -> None:
    """tool_choice auto: capable fallbacks first, then the ones that would answer as text."""
    req = ChatRequest.model_validate({"model": "auto", "messages": TEXT, "tools": TOOLS})
    out = route_capable(decision("shared", ["embedded", "local"]), needs(req),
                        CAPS.__getitem__, lambda t: t + "-model")
    assert (out.tier, out.fallback_chain, out.text_only) == ("shared", ["local", "embedded"],
                                                             ["embedded"])
    required = ChatRequest.model_validate({"model": "auto", "messages": TEXT, "tools": TOOLS,
                                           "tool_choice": "required"})
    out = route_capable(decision("shared", ["embedded", "local"]), needs(required),
                        CAPS.__getitem__, lambda t: t + "-model")
    assert (out.fallback_chain, out.text_only) == (["local"], [])


@pytest.mark.parametrize(("body", "param"), [
    ({"tools": TOOLS, "tool_choice": "required"}, "tools"),
    ({"messages": IMG}, "messages[0].content[0]"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}},
      "logprobs": True}, "logprobs"),
    ({"native": {"think": True}}, "think"),
    ({"native": {"options": {"mirostat": 2}}}, "options.mirostat"),
    ({"n": 3}, "n"),
])
def test_no_capable_tier_is_a_named_refusal(body: dict[str, object], param: str) -> None:
    req = ChatRequest.model_validate({"model": "auto", "messages": TEXT, **body})
    with pytest.raises(CapabilityError) as info:
        route_capable(decision("embedded", []), needs(req), CAPS.__getitem__, str)
    assert info.value.param == param
    assert param in str(info.value) and "tier embedded" in str(info.value)


def test_context_need_and_n_with_stream() -> None:
    req = ChatRequest.model_validate({"model": "auto", "messages": TEXT})
    with pytest.raises(CapabilityError) as info:
        route_capable(decision("embedded", []), needs(req, 500), CAPS.__getitem__, str)
    assert info.value.code == "context_length_exceeded"
    with pytest.raises(CapabilityError, match="n: "):
        needs(ChatRequest.model_validate({"model": "a", "messages": TEXT, "n": 2,
                                          "stream": True}))
    assert Need("tools", "tools", optional=True) in needs(ChatRequest.model_validate(
        {"model": "a", "messages": TEXT, "tools": TOOLS}))


@pytest.mark.parametrize(("body", "found"), [
    ({"model": "x", "api_base": "http://evil"}, "api_base"),
    ({"model": "x", "Custom_LLM_Provider": "openai"}, "Custom_LLM_Provider"),
    ({"model": "x", "mock_response": "hi"}, "mock_response"),
    ({"model": "x", "temperature": 0}, None),
])
def test_forbidden_fields(body: dict[str, object], found: str | None) -> None:
    assert forbidden_field(body) == found


def test_gguf_metadata_of_the_embedded_model() -> None:
    from devloop.backends.embedded import default_gguf
    from devloop.backends.gguf import model_facts, read_metadata

    ctx, fim = model_facts(default_gguf())
    assert ctx == 8192 and fim is False  # SmolLM2 has no fill-in-the-middle tokens
    assert read_metadata(default_gguf())["general.architecture"] == "llama"
    assert model_facts(Path(__file__)) == (None, False)
