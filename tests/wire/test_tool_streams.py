"""Issue 21 inputs 1-3 and 9: tool calls survive streams and the cache, on every tier shape.

Real server on loopback, real clients (openai SDK stream helper, ollama client); the upstream
is the scripted one (it emits tool calls in the shapes real servers send).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from tests.conftest import EMBEDDED_PROFILE
from tests.helpers import RunningServer, start_server, write_profile
from tests.wire.scripted import WEATHER_TOOL, ScriptedUpstream


def sdk(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)


def unique(text: str) -> str:
    return f"{text} [{uuid.uuid4().hex[:8]}]"


@pytest.mark.parametrize("model", ["shared", "local"])
def test_sdk_stream_helper_gets_whole_tool_call_on_miss_and_hit(
        wire_server: RunningServer, scripted: ScriptedUpstream, model: str) -> None:
    client = sdk(wire_server)
    messages = [{"role": "user", "content": unique("What is the weather in Paris?")}]
    path = "/v1/chat/completions" if model == "shared" else "/api/chat"
    before = scripted.count(path)
    finals = []
    for _ in range(2):
        with client.chat.completions.stream(model=model, messages=messages, temperature=0,
                                            tools=[WEATHER_TOOL]) as stream:
            finals.append(stream.get_final_completion())
    assert scripted.count(path) == before + 1  # the second was answered from the cache
    for final in finals:
        choice = final.choices[0]
        assert choice.finish_reason == "tool_calls"
        (call,) = choice.message.tool_calls
        assert call.type == "function" and call.id.startswith("call_")
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert finals[0].choices[0].message.tool_calls[0].id == \
        finals[1].choices[0].message.tool_calls[0].id


@pytest.mark.parametrize("model", ["shared", "local"])
def test_raw_stream_tool_call_pieces_carry_index_and_body_hit_keeps_them(
        wire_server: RunningServer, model: str) -> None:
    body = {"model": model, "temperature": 0, "stream": True, "tools": [WEATHER_TOOL],
            "messages": [{"role": "user", "content": unique("Weather in Paris?")}]}
    url = wire_server.base_url + "/v1/chat/completions"
    for expected_cache in ("miss", "hit"):
        with httpx.stream("POST", url, json=body, timeout=30) as resp:
            assert resp.headers["x-devloop-cache"] == expected_cache
            events = [json.loads(line[6:]) for line in resp.iter_lines()
                      if line.startswith("data: {")]
        pieces = [tc for e in events for c in e["choices"]
                  for tc in (c["delta"].get("tool_calls") or ())]
        assert pieces and all(p["index"] == 0 for p in pieces)
        assert pieces[0]["id"] and pieces[0]["type"] == "function"
        args = "".join(p["function"].get("arguments", "") for p in pieces)
        assert json.loads(args) == {"city": "Paris"}
        finishes = [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]]
        assert finishes == ["tool_calls"]
    # the same request without stream: a hit, the body has the whole call
    resp = httpx.post(url, json={**body, "stream": False}, timeout=30)
    assert resp.status_code == 200
    assert resp.headers["x-devloop-cache"] == "hit"
    message = resp.json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"
    assert resp.json()["choices"][0]["finish_reason"] == "tool_calls"


def test_ollama_tier_call_ids_are_unique(wire_server: RunningServer) -> None:
    ids = set()
    for _ in range(2):
        resp = httpx.post(wire_server.base_url + "/v1/chat/completions", timeout=30, json={
            "model": "local", "tools": [WEATHER_TOOL],
            "messages": [{"role": "user", "content": unique("Weather in Paris?")}]})
        ids.add(resp.json()["choices"][0]["message"]["tool_calls"][0]["id"])
    assert len(ids) == 2 and "call_0" not in ids


@pytest.mark.parametrize("model", ["local", "shared"])
def test_ollama_client_stream_gets_tool_calls(wire_server: RunningServer, model: str) -> None:
    client = ollama.Client(host=wire_server.base_url)
    calls = []
    for _ in range(2):  # miss, then hit
        parts = list(client.chat(model=model, stream=True, tools=[WEATHER_TOOL],
                                 options={"temperature": 0},
                                 messages=[{"role": "user", "content": "Weather, Paris?"}]))
        assert parts[-1].done
        calls.append([c for p in parts for c in (p.message.tool_calls or ())])
    for got in calls:
        (call,) = got
        assert call.function.name == "get_weather"
        assert dict(call.function.arguments) == {"city": "Paris"}


def test_ollama_face_tool_result_round_trip_reaches_openai_tier_with_tool_call_id(
        wire_server: RunningServer, scripted: ScriptedUpstream) -> None:
    client = ollama.Client(host=wire_server.base_url)
    first = client.chat(model="shared", tools=[WEATHER_TOOL],
                        messages=[{"role": "user", "content": unique("Weather in Paris?")}])
    call = first.message.tool_calls[0]
    answer = client.chat(model="shared", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "21 C and sunny", "tool_name": "get_weather"},
    ])
    assert answer.message.content == "The tool said: 21 C and sunny"
    sent = scripted.last("/v1/chat/completions")["messages"]
    assert sent[1]["tool_calls"][0]["id"] == sent[2]["tool_call_id"]
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}


def test_cached_answer_is_booked_to_the_tier_that_served_it(
        embedded_profile: Path, tmp_path: Path) -> None:
    server = start_server(embedded_profile, tmp_path / "home")  # local is down: embedded serves
    try:
        body = {"model": "auto", "temperature": 0, "max_tokens": 4,
                "messages": [{"role": "user", "content": "Say hi"}]}
        for _ in range(2):
            resp = httpx.post(server.base_url + "/v1/chat/completions", json=body, timeout=60)
            assert resp.status_code == 200
            assert resp.json()["model"] == "smollm2-135m"  # the model that answered
        assert resp.headers["x-devloop-cache"] == "hit"
        with sqlite3.connect(server.db_path) as conn:
            rows = conn.execute("SELECT tier, cache FROM calls ORDER BY ts").fetchall()
        assert rows == [("embedded", "miss"), ("embedded", "hit")]
    finally:
        server.stop()


def test_explicit_tier_falls_back_only_where_the_profile_allows(tmp_path: Path) -> None:
    profile = EMBEDDED_PROFILE.replace(
        "routes:", "  shared:   {backend: openai, base_url: \"http://127.0.0.1:9/v1\", "
        "model: s}\nroutes:").replace("fallbacks: [local, embedded]",
                                      "fallbacks: [local, embedded, shared]")
    server = start_server(write_profile(tmp_path / "p.yaml", profile), tmp_path / "home")
    try:
        url = server.base_url + "/v1/chat/completions"
        msg = [{"role": "user", "content": "hi"}]
        resp = httpx.post(url, json={"model": "shared", "messages": msg, "max_tokens": 2},
                          timeout=60)
        assert resp.status_code == 503  # shared has no `fallback:`: no silent substitute
        resp = httpx.post(url, json={"model": "local", "messages": msg, "max_tokens": 2},
                          timeout=60)
        assert resp.status_code == 200  # local's own fallback is embedded
        assert resp.json()["model"] == "smollm2-135m"
        assert "served by embedded" in resp.headers["x-devloop-route-reason"]
    finally:
        server.stop()
