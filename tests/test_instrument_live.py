"""Issue 12, live: a real devloop server on loopback in front of an Anthropic-shaped upstream
(tests/anthropic_stub.py) reached through litellm; real clients (openai SDK, httpx); the
ledger, `devloop spend --json`, `spend --diagnose --json` and /metrics checked against what
the upstream sent and received."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devloop.pricing import lookup_model
from devloop.types import Usage
from tests.anthropic_stub import AnthropicStub
from tests.helpers import ROOT, RunningServer, base_env, start_server, write_profile

MODEL = "anthropic/claude-sonnet-4-5"
STATIC = ("You review code changes for a payments service. Flag missing tests, unclear names, "
          "unsafe SQL, secrets in code and error handling that swallows failures. ") * 60


def profile(stub: AnthropicStub, extra: str = "") -> str:
    return f"""
name: instrument
production_model: {MODEL}
tiers:
  frontier: {{backend: litellm, model: {MODEL}, api_base: "{stub.base_url}", api_key_env: STUB_KEY}}
routes:
  - {{tier: frontier}}
cache: {{enabled: false}}
store_bodies: true
{extra}
"""


@pytest.fixture
def stub() -> Iterator[AnthropicStub]:
    with AnthropicStub() as s:
        yield s


def serve(tmp_path: Path, stub: AnthropicStub, extra: str = "",
          env: dict[str, str] | None = None) -> RunningServer:
    path = write_profile(tmp_path / "profiles" / "instrument.yaml", profile(stub, extra))
    return start_server(path, tmp_path / "home", env={"STUB_KEY": "sk-stub", **(env or {})})


def cli(home: Path, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    full = base_env(home)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "devloop", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=120)


def spend_json(home: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = cli(home, "spend", "--json", *args, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def chat(server: RunningServer, feature: str, system: str, user: str,
         **extra: Any) -> httpx.Response:
    body = {"model": "frontier", "messages": [{"role": "system", "content": system},
                                              {"role": "user", "content": user}], **extra}
    return httpx.post(server.base_url + "/v1/chat/completions", json=body, timeout=60,
                      headers={"X-Devloop-Feature": feature})


def rows(server: RunningServer, where: str = "1") -> list[dict[str, Any]]:
    conn = sqlite3.connect(server.db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM calls WHERE {where} ORDER BY ts")]
    finally:
        conn.close()


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# -- Must-show 2 ----------------------------------------------------------------------------------
def test_cache_usage_agrees_across_ledger_spend_and_metrics(tmp_path: Path,
                                                            stub: AnthropicStub) -> None:
    from openai import OpenAI

    stub.state.fixed_usage = {"input_tokens": 100, "cache_read_input_tokens": 3000,
                              "cache_creation_input_tokens": 2000,
                              "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                                 "ephemeral_1h_input_tokens": 2000}}
    stub.state.answer_tokens = 10
    server = serve(tmp_path, stub)
    try:
        client = OpenAI(base_url=server.base_url + "/v1", api_key="unused")
        for i in range(2):
            client.chat.completions.create(
                model="frontier", messages=[{"role": "user", "content": f"review {i}"}],
                max_tokens=10, extra_headers={"X-Devloop-Feature": "review"})
        stream = client.chat.completions.create(
            model="frontier", messages=[{"role": "user", "content": "review 2"}], max_tokens=10,
            stream=True, stream_options={"include_usage": True},
            extra_headers={"X-Devloop-Feature": "review"})
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        metrics = httpx.get(server.base_url + "/metrics").text
    finally:
        server.stop()
    sent = Usage(5100, 10, 3000, cache_write_tokens=2000, cache_write_ttl="1h")
    price = lookup_model(MODEL)
    assert price is not None
    want_in, want_out = price.usage_split(sent)
    ledger = rows(server)
    assert len(ledger) == 3
    for r in ledger:
        assert (r["prompt_tokens"], r["completion_tokens"], r["cache_read_tokens"],
                r["cache_write_tokens"], r["cache_write_ttl"]) == (5100, 10, 3000, 2000, "1h")
        assert r["input_cost_usd"] == pytest.approx(want_in, rel=1e-6)
        assert r["output_cost_usd"] == pytest.approx(want_out, rel=1e-6)
        assert r["cost_usd"] == pytest.approx(want_in + want_out, rel=1e-6)
    report = spend_json(server.home, "--by", "feature")
    (group,) = report["groups"]
    assert group["key"] == "review"
    assert group["provider_cache_hit_rate"] == pytest.approx(3000 / 5100, abs=1e-4)
    assert (group["cache_read_tokens"], group["cache_write_tokens"]) == (9000, 6000)
    assert report["totals"]["provider_cache_hit_rate"] == group["provider_cache_hit_rate"]
    assert metric(metrics, "devloop_cache_read_tokens_total", feature="review") == 9000
    assert metric(metrics, "devloop_cache_write_tokens_total", feature="review", ttl="1h") == 6000
    assert metric(metrics, "devloop_output_tokens_count", feature="review") == 3
    assert metric(metrics, "devloop_output_tokens_sum", feature="review") == 30


# -- Must-show 3 ----------------------------------------------------------------------------------
def test_planted_timestamp_is_diagnosed_and_moving_it_raises_the_hit_rate(
        tmp_path: Path, stub: AnthropicStub) -> None:
    stub.state.answer_tokens = 20
    server = serve(tmp_path, stub)
    try:
        for i in range(8):
            stamp = f"2026-11-29T10:{i:02d}:17Z"
            r = chat(server, "planted", f"Current time: {stamp}\n{STATIC}", f"Review change {i}",
                     max_tokens=20)
            assert r.status_code == 200, r.text
        # the client marked no breakpoint: devloop added one after the system prompt
        sys_block = stub.bodies()[0]["system"]
        assert isinstance(sys_block, list) and "cache_control" in sys_block[-1]
        diag = spend_json(server.home, "--diagnose")
        for i in range(8):
            stamp = f"2026-11-29T11:{i:02d}:17Z"
            r = chat(server, "fixed", STATIC, f"Review change {i}\nCurrent time: {stamp}",
                     max_tokens=20)
            assert r.status_code == 200, r.text
    finally:
        server.stop()
    (d,) = [d for d in diag["diagnoses"] if d["feature"] == "planted"]
    assert d["kind"] == "prefix_changes" and d["calls"] == 8
    assert d["position"] is not None and d["position"] <= 4
    assert d["text"] == "2026-11-29T10:07:17Z"
    assert d["provider_cache_hit_rate"] == 0.0
    assert d["cost_per_1k_calls_usd"] > 2 * d["fixed_cost_per_1k_calls_usd"] > 0
    groups = {g["key"]: g for g in spend_json(server.home, "--by", "feature")["groups"]}
    assert groups["planted"]["provider_cache_hit_rate"] == 0.0
    assert groups["fixed"]["provider_cache_hit_rate"] > 0.7
    after = spend_json(server.home, "--diagnose")
    assert not [d for d in after["diagnoses"] if d["feature"] == "fixed"]
    text = cli(server.home, "spend", "--diagnose").stdout
    assert "planted" in text and "2026-11-29T10:07:17Z" in text and "per 1,000 calls" in text


# -- Must-show 4 and 5 ----------------------------------------------------------------------------
def test_calls_without_max_tokens_are_sent_and_reserved_with_one_limit(
        tmp_path: Path, stub: AnthropicStub) -> None:
    stub.state.delay = 0.3  # all 50 in flight together
    budget = 0.05
    server = serve(tmp_path, stub, f"default_max_tokens: 256\nbudgets:\n"
                                   f"  - {{scope: 'tier:frontier', usd: {budget}, period: day}}\n")

    async def one(client: httpx.AsyncClient, i: int) -> httpx.Response:
        return await client.post("/v1/chat/completions", json={
            "model": "frontier", "messages": [{"role": "user", "content": f"Summarise item {i}"}]},
            headers={"X-Devloop-Feature": "bulk"})

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            return await asyncio.gather(*(one(client, i) for i in range(50)))

    try:
        responses = asyncio.run(run())
    finally:
        server.stop()
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert ok and refused and len(ok) + len(refused) == 50
    assert all(b["max_tokens"] == 256 for b in stub.bodies())  # the explicit limit
    assert len(stub.bodies()) == len(ok)
    # the upstream answered the worst case (max_tokens tokens); still within the budget
    ledger = rows(server)
    assert sum(r["cost_usd"] for r in ledger) <= budget + 1e-12
    assert all(r["completion_tokens"] == 256 for r in ledger if r["status"] == 200)
    # what was reserved: the refusal names the per-call worst case at those 256 tokens
    m = re.search(r"this call up to \$([0-9.]+)", refused[0].json()["error"]["message"])
    assert m is not None
    price = lookup_model(MODEL)
    assert price is not None
    reserved = float(m.group(1))
    prompt_billed = max(r["prompt_tokens"] for r in ledger if r["status"] == 200)
    assert reserved >= price.cost(prompt_billed, 256)
    assert reserved < price.cost(prompt_billed * 2, 257)
    # Must-show 5: every refusal is a ledger row at $0 with its reason, and spend counts them
    refusals = [r for r in ledger if r["status"] == 429]
    assert len(refusals) == len(refused)
    assert all(r["cost_usd"] == 0 and "budget" in r["error"] for r in refusals)
    totals = spend_json(server.home)["totals"]
    assert totals["refused_calls"] == len(refused) and totals["calls"] == 50
