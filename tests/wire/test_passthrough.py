"""Issue 21 inputs 4, 6 and 8: same-protocol pass-through and cross-protocol translation.

Asserted on what the scripted upstream received and on what the client got back.
"""

from __future__ import annotations

import json

import httpx
import ollama
import openai

from tests.helpers import RunningServer
from tests.wire.scripted import WEATHER_TOOL, ScriptedUpstream
from tests.wire.test_embedded_wire import IMAGE


def post(server: RunningServer, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(server.base_url + path, json=body, timeout=60)


def test_ollama_to_ollama_forwards_options_think_keep_alive_images(
        wire_server: RunningServer, scripted: ScriptedUpstream) -> None:
    client = ollama.Client(host=wire_server.base_url)
    options = {"temperature": 0.2, "num_predict": 30, "num_ctx": 16384, "top_k": 20,
               "min_p": 0.05, "repeat_penalty": 1.1}
    resp = client.chat(model="local", think=False, keep_alive="5m", options=options,
                       messages=[{"role": "user", "content": "What is this?",
                                  "images": [IMAGE]}])
    assert resp.message.content == "I see 1 image(s)"
    sent = scripted.last("/api/chat")
    assert sent["options"] == options
    assert sent["think"] is False and sent["keep_alive"] == "5m"
    assert sent["messages"][0]["images"] == [IMAGE]


def test_ollama_generate_raw_template_context_reach_ollama(
        wire_server: RunningServer, scripted: ScriptedUpstream) -> None:
    prompt = "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>"
    resp = post(wire_server, "/api/generate", {
        "model": "local", "prompt": prompt, "raw": True, "stream": False,
        "options": {"num_ctx": 8192, "temperature": 0}})
    assert resp.status_code == 200, resp.text
    sent = scripted.last("/api/generate")
    assert sent["raw"] is True and sent["prompt"] == prompt
    assert sent["options"]["num_ctx"] == 8192
    assert resp.json()["context"] == [1, 2, 3]
    resp = post(wire_server, "/api/generate", {
        "model": "local", "prompt": "hi", "template": "{{ .Prompt }}", "context": [5, 6],
        "stream": False})
    assert resp.status_code == 200, resp.text
    sent = scripted.last("/api/generate")
    assert sent["template"] == "{{ .Prompt }}" and sent["context"] == [5, 6]


def test_ollama_only_fields_are_refused_on_other_tiers(wire_server: RunningServer) -> None:
    resp = post(wire_server, "/api/generate", {"model": "shared", "prompt": "hi",
                                               "context": [1, 2], "stream": False})
    assert resp.status_code == 400 and "context" in resp.json()["error"]
    resp = post(wire_server, "/api/chat", {"model": "shared", "stream": False,
                                           "options": {"mirostat": 2},
                                           "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 400 and "options.mirostat" in resp.json()["error"]


def test_ollama_options_map_to_openai_server_fields(
        wire_server: RunningServer, scripted: ScriptedUpstream) -> None:
    resp = post(wire_server, "/api/chat", {
        "model": "shared", "stream": False,
        "options": {"num_ctx": 8192, "top_k": 7, "min_p": 0.1, "repeat_penalty": 1.2},
        "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 200, resp.text
    sent = scripted.last("/v1/chat/completions")
    assert (sent["top_k"], sent["min_p"], sent["repetition_penalty"]) == (7, 0.1, 1.2)
    assert "options" not in sent and "native" not in sent


def test_openai_to_openai_forwards_unknown_fields_and_returns_extras(
        wire_server: RunningServer, scripted: ScriptedUpstream) -> None:
    resp = post(wire_server, "/v1/chat/completions", {
        "model": "shared", "logprobs": True, "top_logprobs": 1, "vendor_knob": {"a": 1},
        "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 200, resp.text
    sent = scripted.last("/v1/chat/completions")
    assert sent["vendor_knob"] == {"a": 1} and sent["logprobs"] is True
    body = resp.json()
    assert body["system_fingerprint"] == "fp_scripted"
    assert body["choices"][0]["logprobs"]["content"][0]["token"] == "Hi"


def test_logprobs_survive_a_stream(wire_server: RunningServer) -> None:
    client = openai.OpenAI(base_url=wire_server.base_url + "/v1", api_key="x", max_retries=0)
    chunks = list(client.chat.completions.create(
        model="shared", logprobs=True, stream=True,
        messages=[{"role": "user", "content": "hi there"}]))
    assert any(c.choices and c.choices[0].logprobs for c in chunks)
    assert chunks[0].system_fingerprint == "fp_scripted"


def test_n_2_is_served_by_a_tier_that_can(wire_server: RunningServer) -> None:
    client = openai.OpenAI(base_url=wire_server.base_url + "/v1", api_key="x", max_retries=0)
    resp = client.chat.completions.create(model="shared", n=2,
                                          messages=[{"role": "user", "content": "hi"}])
    assert [c.index for c in resp.choices] == [0, 1]


def test_openai_face_tools_and_images_reach_an_ollama_tier(
        wire_server: RunningServer, scripted: ScriptedUpstream) -> None:
    client = openai.OpenAI(base_url=wire_server.base_url + "/v1", api_key="x", max_retries=0)
    resp = client.chat.completions.create(model="local", messages=[
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE}"}}]}])
    assert resp.choices[0].message.content == "I see 1 image(s)"
    assert scripted.last("/api/chat")["messages"][0]["images"] == [IMAGE]
    # a tool result round trip: the tool result is named for Ollama
    resp = client.chat.completions.create(model="local", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_x1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_x1", "content": "21 C"}])
    assert resp.choices[0].message.content == "The tool said: 21 C"
    sent = scripted.last("/api/chat")["messages"]
    assert sent[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert sent[2]["tool_name"] == "get_weather"


def test_user_field_is_booked_in_the_ledger(wire_server: RunningServer) -> None:
    import sqlite3

    resp = post(wire_server, "/v1/chat/completions", {
        "model": "shared", "user": "alice-42", "messages": [{"role": "user", "content": "hi"}]})
    rid = resp.headers["x-request-id"]
    with sqlite3.connect(wire_server.db_path) as conn:
        (user,) = conn.execute("SELECT user FROM calls WHERE request_id = ?", (rid,)).fetchone()
    assert user == "alice-42"


def test_capability_reroute_says_why(wire_server: RunningServer) -> None:
    """`auto` routes to local; when the request needs what local lacks it moves, and says so."""
    resp = post(wire_server, "/v1/chat/completions", {
        "model": "auto", "n": 2, "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-devloop-tier"] == "shared"
    assert "local lacks" in resp.headers["x-devloop-route-reason"]
    assert len(resp.json()["choices"]) == 2
    assert json.loads(json.dumps(resp.json()))["model"] == "scripted-model"
