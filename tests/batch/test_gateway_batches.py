"""devloop's own /v1/files + /v1/batches with local and frontier lines: the frontier lines reach
the provider as ONE provider batch per model (booked at the batch price with the provider's
batch id); the local lines run on the embedded tier; the output file has every line."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from devloop.batch_pricing import batch_price
from devloop.config import Profile
from devloop.pricing import Pricing
from tests.batch.batch_upstream import COMPLETION_TOKENS, PROMPT_TOKENS, BatchUpstream
from tests.batch.conftest import ledger, provider_batches
from tests.helpers import start_server, write_profile

PROFILE = """
name: mixed
production_model: anthropic/claude-sonnet-4-6
tiers:
  embedded: {{backend: embedded, model: smollm2-135m}}
  frontier: {{backend: litellm, model: {model}, api_base: "{api_base}", api_key_env: {key_env}}}
routes: [{{tier: embedded}}]
cache: {{enabled: false}}
"""


def line(custom_id: str, model: str, text: str) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "max_tokens": 8, "temperature": 0,
                     "messages": [{"role": "user", "content": text}]}}


@pytest.mark.slow
@pytest.mark.parametrize("model", ["anthropic/claude-sonnet-4-6", "openai/gpt-4o-mini"])
def test_frontier_lines_go_as_one_provider_batch(model: str, upstream: BatchUpstream,
                                                 tmp_path: Path) -> None:
    openai_like = model.startswith("openai/")
    key_env = "OPENAI_API_KEY" if openai_like else "ANTHROPIC_API_KEY"
    prof_text = PROFILE.format(model=model, key_env=key_env, api_base=upstream.base_url
                               + ("/v1" if openai_like else ""))
    prof = write_profile(tmp_path / "p.yaml", prof_text)
    server = start_server(prof, tmp_path / "home", env={key_env: "sk-loopback-key"})
    try:
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused",
                               max_retries=0)
        lines = [line("f1", "frontier", "Say hello to Ada."),
                 line("l1", "embedded", "Say one"),
                 line("f2", "frontier", "Say hello to Bo."),
                 line("l2", "embedded", "Say two"),
                 line("f3", model, "Say hello to Cy.")]  # the tier's model id routes there too
        data = "".join(json.dumps(x) + "\n" for x in lines).encode()
        f = client.files.create(file=("mixed.jsonl", data), purpose="batch")
        batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                      completion_window="24h")
        deadline = time.monotonic() + 180
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            assert time.monotonic() < deadline, batch.status
            time.sleep(0.3)
            batch = client.batches.retrieve(batch.id)
        assert batch.status == "completed", batch
        assert batch.request_counts.completed == 5 and batch.request_counts.failed == 0
        out = {r["custom_id"]: r for r in (json.loads(x) for x in client.files.content(
            batch.output_file_id).content.splitlines() if x)}
        assert set(out) == {"f1", "f2", "f3", "l1", "l2"}  # every line, in one output file
        # the frontier lines reached the provider as ONE batch; the local ones never did
        assert upstream.state.creates == 1 and upstream.state.chat_requests == 0
        sent = upstream.state.batch_requests[0]
        assert sorted(r["custom_id"] for r in sent) == ["f1", "f2", "f3"]
        assert set(upstream.state.keys) == {"sk-loopback-key" if not openai_like
                                            else "Bearer sk-loopback-key"}
        for cid, name in (("f1", "Ada"), ("f2", "Bo"), ("f3", "Cy")):
            body = out[cid]["response"]["body"]
            assert name in body["choices"][0]["message"]["content"]
        for cid in ("l1", "l2"):
            body = out[cid]["response"]["body"]
            assert out[cid]["response"]["status_code"] == 200 and body["choices"]
            assert "echo:" not in body["choices"][0]["message"]["content"]
        (pbatch,) = provider_batches(server.db_path)
        assert pbatch["kind"] == "gateway" and pbatch["status"] == "ended"
        rows = ledger(server.db_path)
        frontier = [r for r in rows if r["tier"] == "frontier"]
        local = [r for r in rows if r["tier"] == "embedded"]
        assert len(frontier) == 3 and len(local) == 2
        price = batch_price(Pricing(Profile.model_validate(
            __import__("yaml").safe_load(prof_text))), model)
        assert price is not None
        for r in frontier:
            assert r["batch_id"] == pbatch["id"]
            assert r["cost_usd"] == pytest.approx(price.cost(PROMPT_TOKENS, COMPLETION_TOKENS))
        assert all(r["batch_id"] is None and r["cost_usd"] == 0 for r in local)
    finally:
        server.stop()
    with sqlite3.connect(server.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM provider_batches").fetchone()[0] == 1


@pytest.mark.slow
def test_a_restarted_server_resumes_polling_the_provider_batch(upstream: BatchUpstream,
                                                               tmp_path: Path) -> None:
    import signal

    model = "anthropic/claude-sonnet-4-6"
    prof = write_profile(tmp_path / "p.yaml", PROFILE.format(
        model=model, key_env="ANTHROPIC_API_KEY", api_base=upstream.base_url))
    env = {"ANTHROPIC_API_KEY": "sk-loopback-key"}
    upstream.state.hold = True
    server = start_server(prof, tmp_path / "home", env=env)
    try:
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused",
                               max_retries=0)
        data = "".join(json.dumps(x) + "\n" for x in [
            line("f1", "frontier", "Say hello to Ada."),
            line("f2", "frontier", "Say hello to Bo.")]).encode()
        f = client.files.create(file=("held.jsonl", data), purpose="batch")
        batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                      completion_window="24h")
        deadline = time.monotonic() + 60
        while not provider_batches(server.db_path):
            assert time.monotonic() < deadline, "the provider batch was not recorded"
            time.sleep(0.2)
    finally:
        server.stop(signal.SIGKILL)
    assert upstream.state.creates == 1
    upstream.state.hold = False  # the provider finishes while devloop is down
    server = start_server(prof, tmp_path / "home", env=env, port=server.port)
    try:
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused",
                               max_retries=0)
        deadline = time.monotonic() + 120
        batch = client.batches.retrieve(batch.id)
        while batch.status != "completed":
            assert time.monotonic() < deadline, batch.status
            time.sleep(0.3)
            batch = client.batches.retrieve(batch.id)
        assert upstream.state.creates == 1  # polled again, not submitted twice
        out = [json.loads(x) for x in client.files.content(
            batch.output_file_id).content.splitlines() if x]
        assert sorted(r["custom_id"] for r in out) == ["f1", "f2"]
        (pbatch,) = provider_batches(server.db_path)
        assert {r["batch_id"] for r in ledger(server.db_path)} == {pbatch["id"]}
    finally:
        server.stop()


@pytest.mark.slow
def test_budgets_hold_for_frontier_batch_lines(upstream: BatchUpstream, tmp_path: Path) -> None:
    model = "anthropic/claude-sonnet-4-6"
    prof = write_profile(tmp_path / "p.yaml", PROFILE.format(
        model=model, key_env="ANTHROPIC_API_KEY", api_base=upstream.base_url)
        + "budgets: [{scope: 'tier:frontier', usd: 0.000001, period: day}]\n")
    server = start_server(prof, tmp_path / "home", env={"ANTHROPIC_API_KEY": "sk-loopback"})
    try:
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused",
                               max_retries=0)
        data = "".join(json.dumps(x) + "\n" for x in [
            line("f1", "frontier", "Say hello to Ada."), line("l1", "embedded", "Say one")])
        f = client.files.create(file=("b.jsonl", data.encode()), purpose="batch")
        batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                      completion_window="24h")
        deadline = time.monotonic() + 120
        while batch.status not in ("completed", "failed"):
            assert time.monotonic() < deadline, batch.status
            time.sleep(0.3)
            batch = client.batches.retrieve(batch.id)
        assert batch.request_counts.completed == 1 and batch.request_counts.failed == 1
        (err,) = [json.loads(x) for x in client.files.content(
            batch.error_file_id).content.splitlines() if x]
        assert err["custom_id"] == "f1" and err["response"]["status_code"] == 429
        assert err["response"]["body"]["error"]["code"] == "budget_exceeded"
        assert upstream.state.creates == 0  # nothing over budget reached the provider
        refused = [r for r in ledger(server.db_path) if r["tier"] == "frontier"]
        assert [(r["status"], r["cost_usd"]) for r in refused] == [(429, 0)]
    finally:
        server.stop()
