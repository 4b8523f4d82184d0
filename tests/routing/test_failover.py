"""Upstream failures against a stub on loopback: fallback with a reason, cooldown, recovery,
timeouts, and streams that drop in the middle."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import RunningServer, start_server, write_profile
from tests.routing.stub_upstream import StubUpstream

pytestmark = pytest.mark.slow


def profile_text(base_url: str) -> str:
    return f"""
name: failover
production_model: anthropic/claude-sonnet-4-5
tiers:
  shared:   {{backend: openai, base_url: "{base_url}", model: stub-model, fallback: embedded,
              timeout: 2}}
  embedded: {{backend: embedded, model: smollm2-135m}}
  frontier: {{backend: litellm, model: openai/stub-model, api_base: "{base_url}"}}
routes:
  - {{tier: shared}}
fallbacks: []
cache: {{enabled: false}}
prices:
  openai/stub-model: {{input: 1000.0, output: 1000.0}}
cooldown: 60
health_interval: 0.3
failure_threshold: 2
"""


@pytest.fixture
def stub() -> Iterator[StubUpstream]:
    with StubUpstream() as s:
        yield s


@pytest.fixture
def server(tmp_path: Path, stub: StubUpstream) -> Iterator[RunningServer]:
    running = start_server(write_profile(tmp_path / "failover.yaml", profile_text(stub.base_url)),
                           tmp_path / "home")
    yield running
    running.stop()


def ask(server: RunningServer, model: str = "auto", **extra: Any) -> httpx.Response:
    return httpx.post(server.base_url + "/v1/chat/completions", timeout=60, json={
        "model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "Hello"}],
        **extra})


def row(server: RunningServer, request_id: str) -> dict[str, Any]:
    with sqlite3.connect(server.db_path) as conn:
        conn.row_factory = sqlite3.Row
        found = conn.execute("SELECT * FROM calls WHERE request_id = ?", (request_id,)).fetchone()
    assert found is not None
    return dict(found)


def test_down_upstream_falls_back_cools_down_and_recovers(server: RunningServer,
                                                          stub: StubUpstream) -> None:
    assert ask(server).headers["x-devloop-tier"] == "shared"
    assert stub.state.chat_requests == 1
    stub.state.mode = "error"  # HTTP 503 from now on
    first = ask(server)
    assert first.status_code == 200
    assert first.headers["x-devloop-tier"] == "embedded"
    reason = first.headers["x-devloop-route-reason"]
    assert "shared failed" in reason and "served by embedded" in reason
    ask(server)  # the second failure in a row starts the cooldown
    assert stub.state.chat_requests == 3
    during = [ask(server) for _ in range(8)]
    assert all(r.status_code == 200 and r.headers["x-devloop-tier"] == "embedded" for r in during)
    assert "shared in cooldown" in during[-1].headers["x-devloop-route-reason"]
    # The dead upstream was not retried on every request (health probes are not requests).
    assert stub.state.chat_requests == 3
    assert httpx.get(server.base_url + "/health").json()["tiers"]["shared"]["cooldown"] is True
    stub.state.mode = "ok"  # back: the next probe notices long before the cooldown ends
    deadline = time.monotonic() + 30
    tier = ""
    while time.monotonic() < deadline and tier != "shared":
        time.sleep(0.2)
        tier = ask(server).headers["x-devloop-tier"]
    assert tier == "shared"
    assert stub.state.chat_requests >= 4
    # the fallback calls were metered on the tier that served them
    served = row(server, first.headers["x-request-id"])
    assert served["tier"] == "embedded" and served["status"] == 200
    assert "shared failed" in served["route_reason"]


def test_unreachable_upstream_cools_down_at_once(tmp_path: Path) -> None:
    from tests.helpers import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    path = write_profile(tmp_path / "dead.yaml", profile_text(dead))
    running = start_server(path, tmp_path / "home")
    try:
        first = ask(running)
        assert first.status_code == 200 and first.headers["x-devloop-tier"] == "embedded"
        assert "shared failed (unreachable)" in first.headers["x-devloop-route-reason"]
        second = ask(running)
        assert "shared in cooldown" in second.headers["x-devloop-route-reason"]
    finally:
        running.stop()


def test_timeout_falls_back(server: RunningServer, stub: StubUpstream) -> None:
    stub.state.delay = 5.0  # the tier's timeout is 2 s
    resp = ask(server)
    assert resp.status_code == 200 and resp.headers["x-devloop-tier"] == "embedded"
    assert "shared failed (timeout)" in resp.headers["x-devloop-route-reason"]


def test_no_fallback_answers_upstream_error(server: RunningServer, stub: StubUpstream) -> None:
    stub.state.mode = "error"
    resp = ask(server, model="frontier")  # frontier has no fallback
    assert resp.status_code in (502, 503)
    assert resp.json()["error"]["code"] == "upstream_error"
    failed = row(server, resp.headers.get("x-request-id") or last_request_id(server))
    assert failed["status"] >= 500 and failed["error"]


def last_request_id(server: RunningServer) -> str:
    with sqlite3.connect(server.db_path) as conn:
        return str(conn.execute("SELECT request_id FROM calls ORDER BY id DESC").fetchone()[0])


@pytest.mark.parametrize("model", ["shared", "frontier"])
def test_stream_dropped_midway_openai(server: RunningServer, stub: StubUpstream,
                                      model: str) -> None:
    stub.state.mode = "drop"  # three pieces, then the connection dies
    resp = httpx.post(server.base_url + "/v1/chat/completions", timeout=60, json={
        "model": model, "stream": True, "max_tokens": 10,
        "messages": [{"role": "user", "content": "Count please"}]})
    assert resp.status_code == 200
    events = [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])
    assert error["error"]["type"] == "upstream_error" and error["error"]["message"]
    pieces = [json.loads(e) for e in events[:-2]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in pieces if c["choices"])
    assert text.startswith("w0 w1 w2")
    rec = row(server, resp.headers["x-request-id"])
    assert rec["status"] == 502 and rec["stream"] == 1 and rec["error"]
    assert rec["tier"] == model and rec["completion_tokens"] > 0 and rec["prompt_tokens"] > 0
    if model == "frontier":  # the partial call is paid for: priced by the profile
        assert rec["cost_usd"] > 0
    else:
        assert rec["cost_usd"] == 0.0


def test_stream_dropped_midway_ollama(server: RunningServer, stub: StubUpstream) -> None:
    stub.state.mode = "drop"
    resp = httpx.post(server.base_url + "/api/chat", timeout=60, json={
        "model": "shared", "messages": [{"role": "user", "content": "Count please"}],
        "options": {"num_predict": 10}})
    lines = [json.loads(line) for line in resp.text.splitlines() if line.strip()]
    assert "error" in lines[-1] and isinstance(lines[-1]["error"], str)
    assert all(not p.get("done") for p in lines[:-1])
    assert "".join(p["message"]["content"] for p in lines[:-1]).startswith("w0 w1 w2")
    rec = row(server, resp.headers["x-request-id"])
    assert rec["status"] == 502 and rec["completion_tokens"] > 0
