"""The anthropic SDK against /v1/messages: embedded answers for real; the scripted
OpenAI-compatible tier calls tools; errors have Anthropic's shape."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from devloop.pricing import lookup_model
from tests.agents.conftest import ledger
from tests.agents.upstream import ScriptedUpstream
from tests.helpers import RunningServer

WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}


@pytest.fixture(scope="module")
def client(agents_server: RunningServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=agents_server.base_url, api_key="devloop",
                               max_retries=0, timeout=120)


def round_trip(tool_use: Any) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "What is the weather in Paris? use the tool"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": tool_use.id, "name": tool_use.name,
             "input": tool_use.input}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny, 21 C"}]},
    ]


def test_create_on_embedded_answers_and_is_booked(client: anthropic.Anthropic,
                                                  agents_server: RunningServer) -> None:
    msg = client.messages.with_raw_response.create(
        model="embedded", max_tokens=12, system=[{"type": "text", "text": "Be brief."}],
        messages=[{"role": "user", "content": "Say hello."}],
        extra_headers={"X-Claude-Code-Session-Id": "sess-sdk-1"})
    assert msg.headers["x-devloop-tier"] == "embedded"
    body = msg.parse()
    assert body.type == "message" and body.role == "assistant"
    assert body.content[0].type == "text" and body.content[0].text.strip()
    assert body.stop_reason in ("end_turn", "max_tokens")
    assert body.usage.input_tokens > 0 and body.usage.output_tokens > 0
    rows = ledger(agents_server.db_path, msg.headers["x-request-id"])
    assert rows and rows[0]["endpoint"] == "messages" and rows[0]["tier"] == "embedded"


def test_stream_on_embedded(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="embedded", max_tokens=12,
                                messages=[{"role": "user", "content": "Count to three."}]) as s:
        kinds = [event.type for event in s]
        final = s.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_delta" in kinds and "message_delta" in kinds
    assert final.content[0].text.strip()
    assert final.usage.output_tokens > 0


def test_tool_result_round_trip_on_embedded(client: anthropic.Anthropic) -> None:
    """The embedded model reads a conversation with a tool call and its result and answers."""
    use = anthropic.types.ToolUseBlock(type="tool_use", id="toolu_1", name="get_weather",
                                       input={"city": "Paris"})
    msg = client.messages.create(model="embedded", max_tokens=16, tools=[WEATHER],
                                 messages=round_trip(use))
    assert msg.content and msg.content[0].type == "text" and msg.content[0].text.strip()


def test_tools_round_trip_on_openai_compatible_tier(client: anthropic.Anthropic,
                                                    scripted: ScriptedUpstream) -> None:
    first = client.messages.create(
        model="shared", max_tokens=64, tools=[WEATHER],
        messages=[{"role": "user", "content": "What is the weather in Paris? use the tool"}])
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    sent = scripted.received("/v1/chat/completions")[-1].body
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    second = client.messages.create(model="shared", max_tokens=64, tools=[WEATHER],
                                    messages=round_trip(use))
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "tool said: sunny, 21 C"
    sent = scripted.received("/v1/chat/completions")[-1].body
    assert sent["messages"][-1] == {"role": "tool", "tool_call_id": use.id,
                                    "content": "sunny, 21 C"}
    assert sent["messages"][-2]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_streamed_tool_use_on_openai_compatible_tier(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
            model="shared", max_tokens=64, tools=[WEATHER],
            messages=[{"role": "user", "content": "Weather in Paris? use the tool"}]) as s:
        kinds = [event.type for event in s]
        final = s.get_final_message()
    assert "input_json" in kinds  # the SDK's event for input_json_delta
    use = next(b for b in final.content if b.type == "tool_use")
    assert use.input == {"city": "Paris"} and final.stop_reason == "tool_use"


def test_count_tokens(client: anthropic.Anthropic) -> None:
    small = client.messages.count_tokens(model="embedded",
                                         messages=[{"role": "user", "content": "hi"}])
    big = client.messages.count_tokens(model="embedded", tools=[WEATHER], system="Be brief. " * 50,
                                       messages=[{"role": "user", "content": "hi"}])
    assert 0 < small.input_tokens < big.input_tokens


def test_errors_have_anthropics_shape(agents_server: RunningServer,
                                      client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model="embedded", max_tokens=0,
                               messages=[{"role": "user", "content": "x"}])
    assert bad.value.status_code == 400 and "max_tokens" in bad.value.message
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="llama-17-x", max_tokens=4,
                               messages=[{"role": "user", "content": "x"}])
    resp = httpx.post(agents_server.base_url + "/v1/messages?beta=true",
                      json={"model": "embedded", "max_tokens": 4, "messages": [],
                            "surprise": 1})
    assert resp.status_code == 400
    assert resp.json() == {"type": "error", "error": {
        "type": "invalid_request_error", "message": "surprise: unsupported field on /v1/messages"}}


def test_ignored_fields_are_named(agents_server: RunningServer) -> None:
    resp = httpx.post(agents_server.base_url + "/v1/messages", timeout=120, json={
        "model": "embedded", "max_tokens": 4, "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-devloop-ignored"] == "cache_control, thinking"


def test_frontier_pass_through_keeps_the_body_and_the_answer(
        client: anthropic.Anthropic, scripted: ScriptedUpstream,
        agents_server: RunningServer) -> None:
    system = [{"type": "text", "text": "Style guide. " * 20, "cache_control": {"type": "ephemeral"}}]
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=64, system=system,
        thinking={"type": "enabled", "budget_tokens": 1024}, metadata={"user_id": "u1"},
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-beta": "zeta-2099-01-01,alpha-2098-01-01"})
    msg = raw.parse()
    assert "x-devloop-ignored" not in raw.headers  # nothing was dropped
    assert msg.id == "msg_scripted" and msg.content[0].text == "frontier answer"
    assert msg.usage.cache_read_input_tokens == 1800
    assert msg.usage.cache_creation_input_tokens == 300
    sent = scripted.received("/v1/messages")[-1]
    assert sent.headers["anthropic-beta"] == "zeta-2099-01-01,alpha-2098-01-01"  # order kept
    assert sent.body["system"] == system and sent.body["metadata"] == {"user_id": "u1"}
    assert sent.body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent.body["model"] == "claude-sonnet-4-6"
    row = ledger(agents_server.db_path, raw.headers["x-request-id"])[0]
    assert row["tier"] == "frontier" and row["endpoint"] == "messages"
    assert (row["prompt_tokens"], row["cached_tokens"]) == (40 + 1800 + 300, 1800)
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (1800, 300)
    assert row["cache_write_ttl"] == "5m"
    # priced at litellm's rates for claude-sonnet-4-6: fresh input, cache read, cache write
    price = lookup_model("anthropic/claude-sonnet-4-6")
    assert price is not None and price.cache_read and price.cache_write
    expected = 40 * price.input + 1800 * price.cache_read + 300 * price.cache_write \
        + 7 * price.output
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-9)


def test_frontier_stream_is_relayed_event_for_event(client: anthropic.Anthropic,
                                                    agents_server: RunningServer) -> None:
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=64,
                                messages=[{"role": "user", "content": "hi"}]) as s:
        final = s.get_final_message()
    assert final.content[0].text == "frontier answer"
    assert final.usage.cache_read_input_tokens == 1800
    raw = httpx.post(agents_server.base_url + "/v1/messages", timeout=60, json={
        "model": "claude-sonnet-4-6", "max_tokens": 64, "stream": True,
        "messages": [{"role": "user", "content": "hi"}]})
    names = [line[7:] for line in raw.text.splitlines() if line.startswith("event: ")]
    # the upstream's own order (its ping comes after the first block starts; devloop's
    # translation would put it right after message_start)
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta",
                     "message_stop"]
