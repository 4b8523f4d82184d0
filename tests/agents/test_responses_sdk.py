"""The openai SDK against /v1/responses: embedded answers; the scripted OpenAI-compatible
tier runs a function-tool round trip; stateless rules and errors."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.agents.conftest import ledger
from tests.agents.upstream import ScriptedUpstream
from tests.helpers import RunningServer

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}


@pytest.fixture(scope="module")
def client(agents_server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=agents_server.base_url + "/v1", api_key="devloop",
                         max_retries=0, timeout=120)


def test_create_on_embedded(client: openai.OpenAI, agents_server: RunningServer) -> None:
    raw = client.responses.with_raw_response.create(
        model="embedded", instructions="Be brief.", input="Say hello.", max_output_tokens=12,
        extra_headers={"session-id": "codex-sess-1"})
    resp = raw.parse()
    assert resp.object == "response" and resp.status in ("completed", "incomplete")
    assert resp.output_text.strip()
    assert resp.usage is not None and resp.usage.input_tokens > 0
    # the embedded model's KV prefix reuse (issue 15) is reported as cached input tokens: an
    # earlier call on this server may share the chat template's first tokens, never all
    assert 0 <= resp.usage.input_tokens_details.cached_tokens < resp.usage.input_tokens
    rows = ledger(agents_server.db_path, raw.headers["x-request-id"])
    assert rows and rows[0]["endpoint"] == "responses"


def test_stream_on_embedded(client: openai.OpenAI) -> None:
    with client.responses.stream(model="embedded", input="Count to three.",
                                 max_output_tokens=12) as s:
        events = list(s)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in kinds and "response.output_text.done" in kinds
    # the terminal event carries the whole response; `incomplete` when max_output_tokens cut it
    # (the SDK's get_final_response() wants `completed` only, as with OpenAI's own API)
    assert kinds[-1] in ("response.completed", "response.incomplete")
    final = events[-1].response  # type: ignore[union-attr]
    assert final.status == kinds[-1].removeprefix("response.")
    assert final.output_text.strip() and final.usage.output_tokens > 0


def test_function_tool_round_trip(client: openai.OpenAI, scripted: ScriptedUpstream) -> None:
    question = [{"role": "user", "content": "Weather in Paris? use the tool"}]
    first = client.responses.create(model="shared", input=question, tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    history = [*question, {"type": "function_call", "call_id": call.call_id,
                           "name": call.name, "arguments": call.arguments},
               {"type": "function_call_output", "call_id": call.call_id,
                "output": "sunny, 21 C"}]
    second = client.responses.create(model="shared", input=history, tools=[WEATHER])
    assert second.output_text == "tool said: sunny, 21 C"
    sent = scripted.received("/v1/chat/completions")[-1].body
    assert sent["messages"][-2]["tool_calls"][0]["id"] == call.call_id
    assert sent["messages"][-1]["role"] == "tool"


def test_streamed_function_call(client: openai.OpenAI) -> None:
    with client.responses.stream(model="shared", tools=[WEATHER],
                                 input="Weather in Paris? use the tool") as s:
        kinds = [e.type for e in s]
        final = s.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    call = next(item for item in final.output if item.type == "function_call")
    assert json.loads(call.arguments) == {"city": "Paris"}


def test_structured_output_reaches_the_tier(client: openai.OpenAI,
                                            scripted: ScriptedUpstream) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
              "additionalProperties": False}
    client.responses.create(model="shared", input="give json", text={"format": {
        "type": "json_schema", "name": "thing", "schema": schema, "strict": True}})
    sent = scripted.received("/v1/chat/completions")[-1].body
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "thing", "schema": schema, "strict": True}}


def test_hosted_tools_are_dropped_and_named(agents_server: RunningServer,
                                            scripted: ScriptedUpstream) -> None:
    resp = httpx.post(agents_server.base_url + "/v1/responses", timeout=60, json={
        "model": "shared", "input": "hi", "store": False,
        "tools": [WEATHER, {"type": "web_search"},
                  {"type": "namespace", "name": "multi_agent_v1", "tools": []}],
        "reasoning": {"summary": "auto"}, "include": ["reasoning.encrypted_content"]})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-devloop-ignored"] == (
        "reasoning, include, tools.web_search, tools.namespace:multi_agent_v1")
    sent = scripted.received("/v1/chat/completions")[-1].body
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]


def test_stateful_fields_are_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="embedded", input="hi", previous_response_id="resp_1")
    assert bad.value.status_code == 400 and "previous_response_id" in str(bad.value)
    body = bad.value.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == "previous_response_id"


def test_models_retrieve_resolves_agent_names(client: openai.OpenAI) -> None:
    assert client.models.retrieve("gpt-5-codex").id == "gpt-5-codex"  # a glob alias
    assert client.models.retrieve("embedded").owned_by == "devloop"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("llama-17-x")
