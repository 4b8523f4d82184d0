"""Must-show 8: bad input never yields a 500 or stops the server."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import RunningServer

pytestmark = pytest.mark.slow

OPENAI_POSTS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
OLLAMA_POSTS = ["/api/chat", "/api/generate", "/api/embed", "/api/show"]
ANTHROPIC_POSTS = ["/v1/messages", "/v1/messages?beta=true", "/v1/messages/count_tokens"]
RESPONSES_POSTS = ["/v1/responses"]


@pytest.fixture(scope="module")
def http(default_server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=default_server.base_url, timeout=60)


def assert_openai_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    if code:
        assert err["code"] == code
    return err


@pytest.mark.parametrize("path", OPENAI_POSTS)
def test_malformed_json(http: httpx.Client, path: str) -> None:
    err = assert_openai_error(http.post(path, content=b'{"model": "auto", "messages": ['), 400,
                              "invalid_json")
    assert err["type"] == "invalid_request_error"


def assert_anthropic_error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"type", "error"} and body["type"] == "error"
    assert set(body["error"]) == {"type", "message"} and body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize("path", ANTHROPIC_POSTS)
def test_malformed_json_anthropic_shape(http: httpx.Client, path: str) -> None:
    err = assert_anthropic_error(http.post(path, content=b'{"model": "embedded", "messages": ['),
                                 400)
    assert err["type"] == "invalid_request_error"
    body = template(path)
    body["model"] = "nope-9"
    err = assert_anthropic_error(http.post(path, json=body), 404)
    assert err["type"] == "not_found_error"


def test_malformed_json_responses_shape(http: httpx.Client) -> None:
    assert_openai_error(http.post("/v1/responses", content=b"{nope"), 400, "invalid_json")
    assert_openai_error(http.post("/v1/responses", json={"model": "embedded"}), 400)


@pytest.mark.parametrize("path", OLLAMA_POSTS)
def test_malformed_json_ollama_shape(http: httpx.Client, path: str) -> None:
    resp = http.post(path, content=b"{nope")
    assert resp.status_code == 400 and isinstance(resp.json()["error"], str)


def test_missing_and_mistyped_fields(http: httpx.Client) -> None:
    err = assert_openai_error(http.post("/v1/chat/completions", json={"model": "auto"}), 400,
                              "missing_field")
    assert err["param"] == "messages"
    err = assert_openai_error(http.post("/v1/chat/completions", json={
        "model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}),
        400)
    assert err["param"] == "max_tokens"
    err = assert_openai_error(http.post("/v1/chat/completions", json={
        "model": "auto", "messages": [{"role": "wizard", "content": "x"}]}), 400)
    assert err["param"].startswith("messages.0.role")
    assert_openai_error(http.post("/v1/chat/completions", json={
        "model": "auto", "messages": [], "max_tokens": 1}), 400)
    assert_openai_error(http.post("/v1/chat/completions", json=[1, 2]), 400, "invalid_json")
    assert_openai_error(http.post("/v1/chat/completions", json={
        "model": "auto", "messages": [{"role": "user", "content": "x"}], "temperature": 9}), 400)


def test_unknown_model_lists_available(http: httpx.Client) -> None:
    err = assert_openai_error(http.post("/v1/chat/completions", json={
        "model": "gpt-17", "messages": [{"role": "user", "content": "x"}]}), 404, "model_not_found")
    assert "gpt-17" in err["message"] and "embedded" in err["message"] and "auto" in err["message"]
    assert err["param"] == "model"


def test_body_over_limit_is_413(http: httpx.Client) -> None:
    big = b'{"model": "auto", "messages": [{"role": "user", "content": "' + b"a" * (11 * 2**20) \
        + b'"}]}'
    assert_openai_error(http.post("/v1/chat/completions", content=big), 413, "request_too_large")
    # Chunked upload without a Content-Length is cut off the same way.
    def chunks() -> Any:
        for _ in range(12):
            yield b"a" * 2**20
    assert_openai_error(http.post("/v1/chat/completions", content=chunks()), 413)


def test_invalid_utf8(http: httpx.Client) -> None:
    body = b'{"model": "auto", "messages": [{"role": "user", "content": "\xff\xfe"}]}'
    assert_openai_error(http.post("/v1/chat/completions", content=body), 400, "invalid_json")
    resp = http.post("/api/chat", content=body)
    assert resp.status_code == 400 and "error" in resp.json()


def test_bad_headers_and_routes(http: httpx.Client) -> None:
    ok_body = {"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
    assert_openai_error(http.post("/v1/chat/completions", json=ok_body,
                                  headers={"X-Devloop-Tier": "moon"}), 400, "invalid_tier")
    assert_openai_error(http.post("/v1/chat/completions", json=ok_body,
                                  headers={"X-Devloop-Cache": "sometimes"}), 400)
    assert_openai_error(http.get("/v1/nothing-here"), 404)
    assert_openai_error(http.get("/v1/chat/completions"), 405)
    assert http.get("/api/nothing").json()["error"]


def template(path: str) -> dict[str, Any]:
    if path.startswith("/v1/messages"):
        body: dict[str, Any] = {"model": "embedded", "max_tokens": 1, "system": "x", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "x"}]}]}
        if path.endswith("count_tokens"):  # count_tokens takes no max_tokens
            body.pop("max_tokens")
        return body
    if path == "/v1/responses":
        return {"model": "embedded", "input": "x", "max_output_tokens": 1, "instructions": "x"}
    if "embed" in path:
        return {"model": "embedded", "input": "x"}
    if path in ("/v1/completions", "/api/generate"):
        return {"model": "embedded", "prompt": "x", "max_tokens": 1, "options": {"num_predict": 1}}
    if path == "/api/show":
        return {"model": "embedded"}
    return {"model": "embedded", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1,
            "options": {"num_predict": 1}}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(OPENAI_POSTS + OLLAMA_POSTS + ANTHROPIC_POSTS + RESPONSES_POSTS),
       data=st.data())
def test_fuzzed_bodies_never_500(http: httpx.Client, path: str, data: st.DataObject) -> None:
    body = template(path)
    # Mutate one or two fields (never the token limits: a huge one would only be slow).
    for _ in range(data.draw(st.integers(1, 2))):
        key = data.draw(st.sampled_from([k for k in (*body, "stream", "temperature", "stop",
                                                     "suffix", "extra", "messages", "model",
                                                     "tools", "tool_choice", "input")
                                         if k not in ("max_tokens", "options",
                                                      "max_output_tokens")]))
        if data.draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = data.draw(json_values)
    raw = json.dumps(body).encode()
    if data.draw(st.booleans()):
        raw = data.draw(st.binary(max_size=64)) if data.draw(st.booleans()) else raw[: len(raw) // 2]
    resp = http.post(path, content=raw)
    assert resp.status_code < 500, (path, raw, resp.text)
    if resp.status_code >= 400:
        if path.startswith("/v1/messages"):
            assert_anthropic_error(resp, resp.status_code)
            return
        err = resp.json()["error"]
        if path.startswith("/api/"):
            assert isinstance(err, str) and err
        else:
            assert set(err) == {"message", "type", "param", "code"}


def test_server_still_answers_after_all_that(http: httpx.Client) -> None:
    assert http.get("/health").json()["status"] == "ok"
    resp = http.post("/v1/chat/completions", json={
        "model": "embedded", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    assert resp.status_code == 200
