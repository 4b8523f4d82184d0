"""The exact response cache, through a real server on the embedded tier."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devloop.cache import ResponseCache, cache_key
from devloop.config import CacheConfig
from devloop.store.writer import DbWriter
from devloop.types import ChatRequest, Completion, Usage
from tests.helpers import RunningServer, start_server, write_profile

PROFILE = """
name: cache
production_model: anthropic/claude-sonnet-4-5
tiers:
  embedded: {backend: embedded, model: smollm2-135m}
routes:
  - {tier: embedded}
cache: {enabled: true, ttl: 1h, max_temperature: 0.2}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("cache")
    running = start_server(write_profile(folder / "cache.yaml", PROFILE), folder / "home")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        yield client


def body(content: str, **params: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": content}],
            "max_tokens": 12, "temperature": 0.0, **params}


def ledger(server: RunningServer, request_id: str) -> dict[str, Any]:
    with sqlite3.connect(server.db_path) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM calls WHERE request_id = ?", (request_id,)).fetchone()
    assert row is not None, request_id
    return dict(row)


def answer(resp: httpx.Response) -> tuple[Any, Any]:
    data = resp.json()
    return data["choices"], data["usage"]


def sse_text(resp: httpx.Response) -> str:
    parts = []
    for line in resp.text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            event = json.loads(line[6:])
            assert "error" not in event, event
            for choice in event["choices"]:
                parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


# -- through the server --------------------------------------------------------------------
@pytest.mark.slow
def test_second_identical_request_is_a_hit(server: RunningServer, http: httpx.Client) -> None:
    req = body("Name one colour of the rainbow.")
    first = http.post("/v1/chat/completions", json=req)
    second = http.post("/v1/chat/completions", json=req)
    assert first.status_code == second.status_code == 200
    assert first.headers["x-devloop-cache"] == "miss"
    assert second.headers["x-devloop-cache"] == "hit"
    assert answer(second) == answer(first)
    row = ledger(server, second.headers["x-request-id"])
    assert row["cache"] == "hit" and row["cost_usd"] == 0.0
    assert row["saved_usd"] == pytest.approx(row["counterfactual_usd"]) and row["saved_usd"] > 0
    assert float(second.headers["x-devloop-saved-usd"]) == pytest.approx(row["saved_usd"])
    assert ledger(server, first.headers["x-request-id"])["cache"] == "miss"


@pytest.mark.slow
@pytest.mark.parametrize("change", [
    {"max_tokens": 13}, {"seed": 7}, {"stop": ["\n"]}, {"top_p": 0.9}, {"temperature": 0.1},
    {"presence_penalty": 0.5}, {"response_format": {"type": "json_object"}},
    {"content": "Name one colour of the rainbow!"}, {"content": "name one colour of the rainbow."},
    {"content": "Name one colour of the rainbow. "}, {"system": "Answer in French."},
])
def test_any_change_misses(http: httpx.Client, change: dict[str, Any]) -> None:
    base = body("Name one colour of the rainbow.")
    assert http.post("/v1/chat/completions", json=base).status_code == 200
    changed = dict(base)
    if "content" in change:
        changed["messages"] = [{"role": "user", "content": change["content"]}]
    elif "system" in change:
        changed["messages"] = [{"role": "system", "content": change["system"]},
                               *base["messages"]]
    else:
        changed.update(change)
    resp = http.post("/v1/chat/completions", json=changed)
    assert resp.status_code == 200
    assert resp.headers["x-devloop-cache"] == "miss", change


@pytest.mark.slow
def test_hot_temperature_is_not_cached(server: RunningServer, http: httpx.Client) -> None:
    for temperature in (0.7, None):  # unset means the backend's sampling default
        req = body("Write a word that rhymes with cat.")
        req.pop("temperature")
        if temperature is not None:
            req["temperature"] = temperature
        first = http.post("/v1/chat/completions", json=req)
        second = http.post("/v1/chat/completions", json=req)
        assert second.headers["x-devloop-cache"] == "bypass", temperature
        assert ledger(server, second.headers["x-request-id"])["cache"] != "hit"
        assert first.status_code == 200


@pytest.mark.slow
def test_stream_and_non_stream_share_entries(http: httpx.Client) -> None:
    # filled by a plain call, answered to a stream
    req = body("Say a short greeting.")
    plain = http.post("/v1/chat/completions", json=req)
    streamed = http.post("/v1/chat/completions", json={**req, "stream": True})
    assert streamed.headers["x-devloop-cache"] == "hit"
    assert sse_text(streamed) == plain.json()["choices"][0]["message"]["content"]
    # filled by a stream, answered to a plain call
    req = body("Say a short farewell.")
    streamed = http.post("/v1/chat/completions",
                         json={**req, "stream": True, "stream_options": {"include_usage": True}})
    assert streamed.headers["x-devloop-cache"] == "miss"
    plain = http.post("/v1/chat/completions", json=req)
    assert plain.headers["x-devloop-cache"] == "hit"
    assert plain.json()["choices"][0]["message"]["content"] == sse_text(streamed)
    # the Ollama protocol asks the same question: the same entry answers it
    ollama = http.post("/api/chat", json={
        "model": "auto", "stream": False, "messages": req["messages"],
        "options": {"temperature": 0.0, "num_predict": 12}})
    assert ollama.headers["x-devloop-cache"] == "hit"
    assert ollama.json()["message"]["content"] == sse_text(streamed)


@pytest.mark.slow
def test_bypass_and_refresh(server: RunningServer, http: httpx.Client) -> None:
    req = body("Count to three.")
    http.post("/v1/chat/completions", json=req)
    bypass = http.post("/v1/chat/completions", json=req, headers={"X-Devloop-Cache": "bypass"})
    assert bypass.headers["x-devloop-cache"] == "bypass"
    refresh = http.post("/v1/chat/completions", json=req, headers={"X-Devloop-Cache": "refresh"})
    assert refresh.headers["x-devloop-cache"] == "bypass"
    again = http.post("/v1/chat/completions", json=req)
    assert again.headers["x-devloop-cache"] == "hit"
    assert answer(again)[0] == answer(refresh)[0]  # refresh replaced the entry
    assert ledger(server, bypass.headers["x-request-id"])["cache"] == "bypass"


# -- the pieces ------------------------------------------------------------------------------
def test_key_is_canonical_and_content_exact() -> None:
    def key(**kw: Any) -> str:
        req = ChatRequest.model_validate({"model": "auto", "messages": [
            {"role": "user", "content": kw.pop("content", "Hi")}], **kw})
        return cache_key("ns", "chat", "local", "m", req, req.token_limit())

    assert key(temperature=0) == key(temperature=0.0)
    assert key(stream=True, stream_options={"include_usage": True}) == key()  # delivery only
    assert key(user="ana") == key()
    assert key(content="Hi") != key(content="hi") != key(content="Hi ")
    assert key(max_tokens=5) == key(max_completion_tokens=5)
    assert key(max_tokens=5) != key(max_tokens=6)
    req = ChatRequest.model_validate({"model": "auto", "messages": [{"role": "user",
                                                                      "content": "Hi"}]})
    assert cache_key("ns", "chat", "local", "m", req, None) != \
        cache_key("other", "chat", "local", "m", req, None)
    assert cache_key("ns", "chat", "local", "m", req, None) != \
        cache_key("ns", "chat", "shared", "m", req, None)


def test_entries_expire_and_persist(tmp_path: Path) -> None:
    import sqlite3 as sq

    from devloop.store.db import connect

    writer = DbWriter(tmp_path / "devloop.db")
    conn: sq.Connection = connect(tmp_path / "devloop.db")
    try:
        cache = ResponseCache(CacheConfig(ttl=60), writer, conn)
        done = Completion("hello", "m", "stop", Usage(3, 1))
        cache.put("k", done)
        writer.submit(lambda c: None).result(10)
        fresh = ResponseCache(CacheConfig(ttl=60), writer, conn)  # a restarted process
        hit = fresh.get("k")
        assert hit is not None and hit.completion.text == "hello"
        assert hit.completion.usage.prompt_tokens == 3
        expired = ResponseCache(CacheConfig(ttl=0.01), writer, conn)
        expired.put("k2", done)
        writer.submit(lambda c: None).result(10)
        time.sleep(0.05)
        assert expired.get("k2") is None
        assert not ResponseCache(CacheConfig(enabled=False), writer, conn).eligible(0.0)
        assert not cache.eligible(None) and cache.eligible(0.0)
        assert not cache.eligible(0.5)
    finally:
        writer.close()
        conn.close()


# -- the semantic cache (off by default) -------------------------------------------------------
SEMANTIC = PROFILE.replace("max_temperature: 0.2}", "max_temperature: 0.2, semantic: true}")


@pytest.mark.slow
def test_semantic_cache_is_off_by_default(http: httpx.Client) -> None:
    http.post("/v1/chat/completions", json=body("What is the capital of France?"))
    again = http.post("/v1/chat/completions", json=body("What's the capital city of France?"))
    assert again.headers["x-devloop-cache"] == "miss"


@pytest.mark.slow
def test_semantic_cache(tmp_path: Path) -> None:
    running = start_server(write_profile(tmp_path / "semantic.yaml", SEMANTIC), tmp_path / "home")
    try:
        with httpx.Client(base_url=running.base_url, timeout=120) as client:
            def ask(text: str, **params: Any) -> httpx.Response:
                resp = client.post("/v1/chat/completions", json=body(text, **params))
                assert resp.status_code == 200, resp.text
                return resp

            first = ask("What is the capital of France?")
            assert first.headers["x-devloop-cache"] == "miss"
            close = ask("What's the capital city of France?")  # cosine about 0.96
            assert close.headers["x-devloop-cache"] == "hit"
            assert answer(close)[0] == answer(first)[0]
            row = ledger(running, close.headers["x-request-id"])
            assert row["cache"] == "hit" and row["saved_usd"] > 0
            assert ask("Write a haiku about autumn leaves.").headers["x-devloop-cache"] == "miss"
            # the same words at another temperature are another bucket
            assert ask("What is the capital of France?", temperature=0.1).headers[
                "x-devloop-cache"] == "miss"
            # code is never answered by likeness
            code = "Why does this fail?\n```python\ndef f(x):\n    return x + {n}\n```"
            ask(code.format(n=1))
            assert ask(code.format(n=2)).headers["x-devloop-cache"] == "miss"
    finally:
        running.stop()


def test_semantic_buckets_and_code() -> None:
    from devloop.semantic_cache import bucket_key, has_code

    def req(text: str, **kw: Any) -> ChatRequest:
        return ChatRequest.model_validate({"model": "auto", "messages": [
            {"role": "user", "content": text}], "temperature": 0.0, **kw})

    assert bucket_key("chat", "local", "m", req("a"), 5) == bucket_key("chat", "local", "m",
                                                                      req("b"), 5)
    assert bucket_key("chat", "local", "m", req("a"), 5) != bucket_key("chat", "local", "m",
                                                                      req("a"), 6)
    assert bucket_key("chat", "local", "m", req("a"), 5) != bucket_key(
        "chat", "local", "m", req("a", temperature=0.1), 5)
    assert bucket_key("chat", "local", "m", req("a"), 5) != bucket_key("chat", "local", "m2",
                                                                      req("a"), 5)
    assert has_code("```\nx = 1\n```") and has_code("def f():\n  pass")
    assert not has_code("What is the capital of France?")
