"""Must show 1: a JSON-schema route on the embedded tier escalates to an OpenAI-compatible
tier when the local answer fails validation; both calls are in the ledger, linked.

The embedded tier constrains its output to the schema (a llama.cpp grammar), so its answer
fails the way a small model's does in practice: 8 tokens of room cut the JSON short."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.helpers import ROOT, RunningServer, base_env, start_server, write_profile
from tests.trust.scripted_upstream import ScriptedUpstream

pytestmark = pytest.mark.slow  # real server + embedded model

PROFILE = """
name: cascade
production_model: anthropic/claude-sonnet-4-5
tiers:
  embedded: {{backend: embedded, model: smollm2-135m}}
  shared:   {{backend: openai, base_url: "{url}", model: scripted-7b}}
routes:
  - {{match: {{feature: "extract-*"}}, tier: embedded, escalate_to: shared,
     checks: [non_empty, json_schema, complete]}}
  - {{tier: embedded}}
cache: {{enabled: true, ttl: 1h}}
"""
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"},
                                           "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
VALID = '{"name": "Ada Lovelace", "age": 36}'


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(lambda body: VALID) as up:
        yield up


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           upstream: ScriptedUpstream) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("cascade")
    profile = write_profile(folder / "cascade.yaml", PROFILE.format(url=upstream.base_url))
    running = start_server(profile, folder / "home")
    yield running
    running.stop()


def rows(server: RunningServer) -> list[dict[str, Any]]:
    with sqlite3.connect(server.db_path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM calls ORDER BY id")]


def ask(client: openai.OpenAI, stream: bool = False) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="auto", temperature=0.0, max_tokens=8, stream=stream,
        messages=[{"role": "user", "content": "Extract the person: Ada Lovelace died at 36."}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "person", "schema": SCHEMA}},
        extra_headers={"X-Devloop-Feature": "extract-person"})


def test_failing_local_answer_escalates_once_and_both_calls_are_linked(
        server: RunningServer, upstream: ScriptedUpstream) -> None:
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", timeout=120)
    raw = ask(client)
    completion = raw.parse()
    assert json.loads(completion.choices[0].message.content) == json.loads(VALID)
    assert raw.headers["x-devloop-tier"] == "shared"
    assert len(upstream.bodies()) == 1  # escalated once
    # the escalation carried the client's schema
    assert upstream.bodies()[0]["response_format"]["json_schema"]["schema"] == SCHEMA
    first, second = rows(server)
    assert first["tier"] == "embedded" and first["status"] == 200
    assert "cascade check json_schema failed" in first["error"]
    assert second["tier"] == "shared" and second["parent_request_id"] == first["request_id"]
    assert second["request_id"] == raw.headers["x-request-id"]
    assert "escalated to shared (json_schema failed)" in second["route_reason"]
    # the valid answer is what the cache keeps: the same request again is a hit, no upstream
    again = ask(client)
    assert again.headers["x-devloop-cache"] == "hit"
    assert json.loads(again.parse().choices[0].message.content) == json.loads(VALID)
    assert len(upstream.bodies()) == 1


def test_streaming_cascade_checks_before_the_first_byte(
        server: RunningServer, upstream: ScriptedUpstream) -> None:
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", timeout=120)
    before = len(upstream.bodies())
    stream = client.chat.completions.create(
        model="auto", temperature=0.0, max_tokens=8, stream=True,
        messages=[{"role": "user", "content": "Extract the person: Alan Turing, 41."}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "person", "schema": SCHEMA}},
        extra_headers={"X-Devloop-Feature": "extract-person"})
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert json.loads(text) == json.loads(VALID)  # only the valid answer reached the client
    assert len(upstream.bodies()) == before + 1


def test_spend_reports_escalations_per_route(server: RunningServer) -> None:
    out = subprocess.run([sys.executable, "-m", "devloop", "spend", "--json", "--by", "route"],
                         cwd=ROOT, env=base_env(Path(server.home)), capture_output=True,
                         text=True, timeout=120, check=True)
    report = json.loads(out.stdout)
    assert report["totals"]["escalations"] == 2
    route = next(g for g in report["groups"] if g["key"].startswith("route 1"))
    # 2 first attempts on the embedded tier, 2 escalations (the cache hit is a call too)
    assert route["escalations"] == 2 and route["escalation_rate"] is not None
