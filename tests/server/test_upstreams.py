"""Must-show 5-7: each remote tier against a real upstream on loopback.

shared   -> llama-cpp-python's own OpenAI-compatible server
local    -> a second devloop's Ollama-protocol /api, through the `ollama` client
frontier -> litellm `openai/<name>` with api_base at that same llama.cpp server
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import ollama
import openai
import pytest

from devloop.backends.embedded import default_gguf
from tests.conftest import EMBEDDED_PROFILE
from tests.helpers import RunningServer, free_port, start_server, wait_healthy, write_profile

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "llama-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(default_gguf()),
             "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
             "--n_ctx", "2048"], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/v1/models", proc, timeout=60, log=log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def gateway(llama_server: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[RunningServer]:
    upstream_devloop = start_server(
        write_profile(tmp_path_factory.mktemp("p") / "up.yaml", EMBEDDED_PROFILE),
        tmp_path_factory.mktemp("upstream-home"))
    profile = f"""
name: remote-tiers
production_model: anthropic/claude-sonnet-4-5
tiers:
  local:    {{backend: ollama, model: embedded, base_url: "{upstream_devloop.base_url}"}}
  shared:   {{backend: openai, base_url: "{llama_server}", model: smollm2}}
  frontier: {{backend: litellm, model: openai/smollm2, api_base: "{llama_server}"}}
routes:
  - {{tier: local}}
fallbacks: []
cache: {{enabled: false}}
prices:
  openai/smollm2: {{input: 3.0, output: 15.0}}
"""
    server = start_server(write_profile(tmp_path_factory.mktemp("p") / "remote.yaml", profile),
                          tmp_path_factory.mktemp("gateway-home"))
    server.extra["upstream_home"] = str(upstream_devloop.home)
    yield server
    server.stop()
    upstream_devloop.stop()


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_shared_tier_streams_first_chunk_before_upstream_finishes(gateway: RunningServer) -> None:
    client = openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="x", max_retries=0)
    start = time.perf_counter()
    stamps: list[float] = []
    pieces: list[str] = []
    raw = client.chat.completions.with_raw_response.create(
        model="shared", messages=[{"role": "user", "content": "Write a long story about a cat."}],
        max_tokens=200, temperature=0.7, stream=True, stream_options={"include_usage": True})
    assert raw.headers["x-devloop-tier"] == "shared"
    usage = None
    for chunk in raw.parse():
        if chunk.choices and chunk.choices[0].delta.content:
            stamps.append(time.perf_counter() - start)
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    assert len(pieces) > 20 and "".join(pieces).strip()
    # No buffering: pieces arrive as upstream makes them, spread over the generation (a
    # buffering proxy would deliver them all within milliseconds, after upstream finished).
    assert stamps[-1] - stamps[0] > 1.0, (stamps[0], stamps[-1])
    halfway = stamps[0] + (stamps[-1] - stamps[0]) / 2
    assert 0.2 < sum(t < halfway for t in stamps) / len(stamps) < 0.8
    # Upstream usage is passed through (llama.cpp may split one token over two chunks).
    assert usage is not None and usage.completion_tokens >= len(pieces) // 2


def test_shared_tier_non_streaming(gateway: RunningServer) -> None:
    client = openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="x", max_retries=0)
    resp = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Say yes."}], max_tokens=8)
    assert resp.choices[0].message.content.strip() and resp.usage.prompt_tokens > 0


def test_local_tier_through_ollama_protocol_upstream(gateway: RunningServer) -> None:
    client = ollama.Client(host=gateway.base_url, timeout=120)
    resp = client.chat(model="local", messages=[{"role": "user", "content": "Hello there"}],
                       options={"num_predict": 10})
    assert resp.message.content.strip() and resp.eval_count
    parts = list(client.generate(model="local", prompt="Roses are red,", stream=True,
                                 options={"num_predict": 10}))
    assert "".join(p.response for p in parts).strip() and parts[-1].done
    emb = client.embed(model="local", input="hello")
    assert len(emb.embeddings[0]) > 100
    # The upstream devloop served them on its embedded tier, and recorded them too.
    upstream_db = Path(gateway.extra["upstream_home"]) / "devloop.db"
    tiers = {r[0] for r in rows(upstream_db, "SELECT tier FROM calls")}
    assert "embedded" in tiers
    ours = rows(gateway.db_path, "SELECT tier, backend FROM calls WHERE tier = 'local'")
    assert ("local", "ollama") in ours


def test_frontier_tier_through_litellm(gateway: RunningServer) -> None:
    client = openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="x", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="frontier", messages=[{"role": "user", "content": "Name a colour."}], max_tokens=8)
    resp = raw.parse()
    assert raw.headers["x-devloop-tier"] == "frontier"
    assert resp.choices[0].message.content.strip() and resp.usage.completion_tokens > 0
    cost = rows(gateway.db_path,
                f"SELECT cost_usd, backend FROM calls WHERE request_id = "
                f"'{raw.headers['x-request-id']}'")
    assert cost and cost[0][1] == "litellm" and cost[0][0] > 0  # priced by the profile
    chunks = list(client.chat.completions.create(
        model="frontier", messages=[{"role": "user", "content": "Name a fruit."}], max_tokens=8,
        stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
