"""Issue 21 inputs 5 and 8 on the embedded tier: grammars, the developer role, honest 400s.

The embedded SmolLM2 answers for real (llama-cpp-python); JSON output is held to the schema
by a llama.cpp grammar and checked with jsonschema.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import ollama
import openai
import pytest

from tests.helpers import RunningServer, start_server

SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
    "required": ["name", "age"], "additionalProperties": False}
# A prompt SmolLM2 answers with a short object (free-form JSON can outgrow any token limit).
OK_PROMPT = "Reply with a JSON object that has one key, ok, set to true."
IMAGE = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU"
         "5ErkJggg==")


@pytest.fixture(scope="module")
def server(embedded_profile: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[RunningServer]:
    running = start_server(embedded_profile, tmp_path_factory.mktemp("embedded-wire"))
    yield running
    running.stop()


def chat(server: RunningServer, **body: object) -> httpx.Response:
    body.setdefault("model", "embedded")
    return httpx.post(server.base_url + "/v1/chat/completions", json=body, timeout=120)


def test_openai_json_schema_output_validates(server: RunningServer) -> None:
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    resp = client.chat.completions.create(
        model="embedded", temperature=0, max_tokens=80,
        messages=[{"role": "user", "content": "Describe a person as JSON."}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "person", "schema": SCHEMA}})
    jsonschema.validate(json.loads(resp.choices[0].message.content), SCHEMA)


def test_openai_json_object_output_parses(server: RunningServer) -> None:
    resp = chat(server, temperature=0, max_tokens=100, response_format={"type": "json_object"},
                messages=[{"role": "user", "content": OK_PROMPT}])
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["finish_reason"] == "stop"
    content = resp.json()["choices"][0]["message"]["content"]
    assert isinstance(json.loads(content), dict)


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_format_schema_validates(server: RunningServer, stream: bool) -> None:
    client = ollama.Client(host=server.base_url)
    messages = [{"role": "user", "content": "Describe a person as JSON."}]
    options = {"temperature": 0, "num_predict": 80}
    if stream:
        text = "".join(p.message.content for p in client.chat(
            model="embedded", messages=messages, format=SCHEMA, options=options, stream=True))
    else:
        text = client.chat(model="embedded", messages=messages, format=SCHEMA,
                           options=options).message.content
    jsonschema.validate(json.loads(text), SCHEMA)


def test_ollama_format_json_parses(server: RunningServer) -> None:
    resp = ollama.Client(host=server.base_url).generate(
        model="embedded", prompt=OK_PROMPT, format="json",
        options={"temperature": 0, "num_predict": 100})
    assert resp.done_reason == "stop"
    assert isinstance(json.loads(resp.response), dict)
    assert resp.model == "smollm2-135m"  # the model that answered, not the name asked for


def test_developer_role_is_the_system_turn(server: RunningServer) -> None:
    as_developer = chat(server, temperature=0, max_tokens=8, messages=[
        {"role": "developer", "content": "Answer with one word."},
        {"role": "user", "content": "Name a colour."}])
    as_system = chat(server, temperature=0, max_tokens=8, messages=[
        {"role": "system", "content": "Answer with one word."},
        {"role": "user", "content": "Name a colour."}], seed=1)
    assert as_developer.status_code == as_system.status_code == 200
    assert as_developer.json()["choices"][0]["message"]["content"] == \
        as_system.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize(("body", "param"), [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
      "tool_choice": "required"}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
      "tool_choice": {"type": "function", "function": {"name": "f"}}}, "tools"),
    ({"logprobs": True}, "logprobs"),
    ({"n": 2}, "n"),
])
def test_what_the_embedded_tier_cannot_do_is_a_400_naming_field_and_tier(
        server: RunningServer, body: dict[str, object], param: str) -> None:
    resp = chat(server, messages=[{"role": "user", "content": "hi"}], **body)
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert param in err["message"] and "embedded" in err["message"]


def test_tools_the_model_may_skip_are_named_as_ignored_and_answered_as_text(
        server: RunningServer) -> None:
    """tool_choice auto (or unset): a text answer is a valid reply, so a tier that cannot call
    tools answers without them and says so, instead of refusing every agent's request."""
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    for extra in ({}, {"tool_choice": "auto"}):
        resp = chat(server, temperature=0, max_tokens=8, tools=tools,
                    messages=[{"role": "user", "content": "hi"}], **extra)
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-devloop-ignored"] == "tools"
        assert "tools not offered" in resp.headers["x-devloop-route-reason"]
        message = resp.json()["choices"][0]["message"]
        assert message["content"] and not message.get("tool_calls")
        assert resp.json()["choices"][0]["finish_reason"] != "tool_calls"


def test_auto_tools_fall_back_to_the_embedded_tier_as_text(server: RunningServer) -> None:
    """`model: auto` with Ollama down (what `continue-config` sends on a fresh machine): the
    embedded fallback answers without the tools instead of a 503, and says so."""
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    resp = chat(server, model="auto", temperature=0, max_tokens=8, tools=tools,
                messages=[{"role": "user", "content": "hello there"}])
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-devloop-tier"] == "embedded"
    assert resp.headers["x-devloop-ignored"] == "tools"
    assert "tools not offered to embedded" in resp.headers["x-devloop-route-reason"]
    assert not resp.json()["choices"][0]["message"].get("tool_calls")


def test_image_part_is_refused_not_described(server: RunningServer) -> None:
    resp = chat(server, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE}"}}]}])
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "messages[0].content[1]"
    resp = httpx.post(server.base_url + "/api/chat", timeout=60, json={
        "model": "embedded", "stream": False,
        "messages": [{"role": "user", "content": "What is this?", "images": [IMAGE]}]})
    assert resp.status_code == 400 and "embedded" in resp.json()["error"]


def test_refused_calls_are_not_booked_as_savings(server: RunningServer) -> None:
    chat(server, messages=[{"role": "user", "content": "hi"}], n=3)
    with sqlite3.connect(server.db_path) as conn:
        rows = conn.execute("SELECT status, saved_usd FROM calls WHERE status = 200 AND "
                            "tier = 'embedded' AND prompt_tokens = 0").fetchall()
    assert rows == []


@pytest.mark.parametrize("prompt", [
    "word " * 9000,  # clearly too long: refused when routed
    "7 " * 17000,  # looks short to the router's estimate; the model's tokenizer refuses it
])
def test_context_overflow_is_context_length_exceeded_naming_the_tier(
        server: RunningServer, prompt: str) -> None:
    resp = chat(server, max_tokens=4, messages=[{"role": "user", "content": prompt}])
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["code"] == "context_length_exceeded"
    assert "embedded" in err["message"]
    with sqlite3.connect(server.db_path) as conn:
        tier, status = conn.execute(
            "SELECT tier, status FROM calls ORDER BY ts DESC LIMIT 1").fetchone()
    assert (tier, status) == ("embedded", 400)


def test_keep_alive_zero_unloads_and_empty_messages_load(server: RunningServer) -> None:
    url = server.base_url + "/api/chat"
    loaded = httpx.post(url, json={"model": "embedded", "messages": []}, timeout=60).json()
    assert loaded["done_reason"] == "load"
    ps = httpx.get(server.base_url + "/api/ps").json()["models"]
    assert ps, "the model is loaded"
    unloaded = httpx.post(url, json={"model": "embedded", "messages": [], "keep_alive": 0},
                          timeout=60).json()
    assert unloaded["done_reason"] == "unload"
    assert httpx.get(server.base_url + "/api/ps").json()["models"] == []
    answered = httpx.post(url, timeout=60, json={
        "model": "embedded", "stream": False, "keep_alive": 0, "options": {"num_predict": 2},
        "messages": [{"role": "user", "content": "hi"}]})
    assert answered.status_code == 200  # answered, then unloaded
    assert httpx.get(server.base_url + "/api/ps").json()["models"] == []


def test_embedded_honours_ollama_sampling_options(server: RunningServer) -> None:
    resp = httpx.post(server.base_url + "/api/chat", timeout=60, json={
        "model": "embedded", "stream": False,
        "options": {"num_ctx": 4096, "top_k": 1, "min_p": 0.05, "repeat_penalty": 1.1,
                    "num_predict": 4},
        "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 200, resp.text
    resp = httpx.post(server.base_url + "/api/chat", timeout=60, json={
        "model": "embedded", "stream": False, "think": True,
        "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 400 and "think" in resp.json()["error"]
