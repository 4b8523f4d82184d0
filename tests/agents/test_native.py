"""The same-protocol client (devloop/backends/native.py) against a scripted Responses
upstream: the body goes out as sent (model and a route's cap aside), the answer and the
events come back as sent, and usage is read for the ledger."""

from __future__ import annotations

import orjson

from devloop.backends.native import NativeUpstream, speaks
from devloop.config import TierConfig
from devloop.types import ChatRequest, Message, NativeCall
from tests.agents.upstream import ScriptedUpstream

BODY = {"model": "gpt-5-codex", "input": "hi", "store": False, "reasoning": {"effort": "low"},
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k1",
        "tools": [{"type": "web_search"}], "max_output_tokens": 500}


def request(stream: bool) -> ChatRequest:
    req = ChatRequest(model="gpt-5-codex", messages=[Message(role="user", content="hi")],
                      max_tokens=100, stream=stream)
    req._passthrough = NativeCall("responses", dict(BODY, stream=stream), {"session-id": "s1"})
    return req


def test_which_tiers_speak_which_protocol() -> None:
    frontier = TierConfig(backend="litellm", model="openai/gpt-5")
    assert speaks(frontier, "openai/gpt-5", "responses")
    assert not speaks(frontier, "openai/gpt-5", "anthropic")
    assert speaks(TierConfig(backend="litellm", model="anthropic/x", api_base="http://h"),
                  "anthropic/x", "anthropic")
    # openai/<name> + api_base is an OpenAI-compatible chat server; openai tiers speak chat
    assert not speaks(TierConfig(backend="litellm", model="openai/q", api_base="http://h"),
                      "openai/q", "responses")
    assert not speaks(TierConfig(backend="openai", model="q", base_url="http://h"), "q",
                      "responses")


async def test_responses_call_and_stream_pass_through(scripted: ScriptedUpstream) -> None:
    up = NativeUpstream("frontier", TierConfig(backend="litellm", model="openai/gpt-5",
                                               api_base=scripted.url + "/v1"))
    try:
        done = await up.call(request(False), "openai/gpt-5")
        sent = scripted.received("/v1/responses")[-1]
        assert sent.body == {**BODY, "model": "gpt-5", "stream": False,
                             "max_output_tokens": 100}  # the route's cap of 100 holds
        assert sent.headers["session-id"] == "s1"
        assert done.raw["id"] == "resp_up" and done.text == "responses answer"
        assert (done.usage.prompt_tokens, done.usage.cached_tokens) == (50, 32)
        deltas = [d async for d in up.stream(request(True), "openai/gpt-5")]
    finally:
        await up.close()
    raw = b"".join(d.raw for d in deltas if d.raw)
    kinds = [orjson.loads(line[6:])["type"] for line in raw.splitlines()
             if line.startswith(b"data: ")]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "".join(d.text for d in deltas) == "responses answer"
    assert deltas[-1].finish_reason == "stop" and deltas[-1].usage.cached_tokens == 32
