"""Must show 2: judge sampling at 100% on a test route. After N local calls the worker
replays them on a loopback "production" tier and asks a scripted judge; `devloop audit
--json` shows the agreement rate; an unparseable verdict counts as an error."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devloop.audit.sampler import make_redactor
from devloop.audit.verdict import parse_verdict
from tests.helpers import ROOT, RunningServer, base_env, start_server, write_profile
from tests.trust.scripted_upstream import ScriptedUpstream, last_user_text

PROFILE = """
name: audited
production_model: anthropic/claude-sonnet-4-5
tiers:
  embedded: {{backend: embedded, model: smollm2-135m}}
  frontier: {{backend: openai, base_url: "{url}", model: prod-model}}
routes:
  - {{match: {{feature: audited}}, tier: embedded}}
  - {{tier: embedded}}
prices: {{prod-model: {{input: 1.0, output: 2.0}}}}
audit: {{sample: 1.0, replay_on: frontier, judge: frontier, usd: {usd}, period: day,
        interval: 0.3}}
"""
N = 4
SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz123456"


class Judge:
    """Replays get a reference answer; verdicts: agree, agree, disagree, then gibberish."""

    def __init__(self) -> None:
        self.verdicts = ['{"verdict": "agree"}', "AGREE", '{"verdict": "disagree"}',
                         "Hmm, both answers have merit."]
        self.judged = 0

    def __call__(self, body: dict[str, Any]) -> str:
        if "Reply with a JSON object" in last_user_text(body):
            verdict = self.verdicts[self.judged % len(self.verdicts)]
            self.judged += 1
            return verdict
        return "The reference answer."


def start(tmp: Path, upstream: ScriptedUpstream, usd: float) -> RunningServer:
    profile = write_profile(tmp / "audited.yaml", PROFILE.format(url=upstream.base_url, usd=usd))
    return start_server(profile, tmp / "home")


def local_calls(server: RunningServer, n: int) -> None:
    with httpx.Client(base_url=server.base_url, timeout=120) as http:
        for i in range(n):
            content = f"Say hello to friend number {i}." + (f" My key is {SECRET}" if i == 0
                                                             else "")
            resp = http.post("/v1/chat/completions", headers={"X-Devloop-Feature": "audited"},
                             json={"model": "auto", "max_tokens": 8, "temperature": 0.0,
                                   "messages": [{"role": "user", "content": content}]})
            assert resp.status_code == 200, resp.text


def audit_json(home: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "devloop", "audit", "--json"], cwd=ROOT,
                         env=base_env(home), capture_output=True, text=True, timeout=120,
                         check=True)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def wait_for(home: Path, done: int, timeout: float = 120) -> dict[str, Any]:
    start_t = time.monotonic()
    while True:
        report = audit_json(home)
        routes = report["routes"]
        if routes and routes[0]["judged"] + routes[0]["errors"] >= done:
            return report
        assert time.monotonic() - start_t < timeout, report
        time.sleep(0.5)


@pytest.fixture
def judge() -> Iterator[tuple[ScriptedUpstream, Judge]]:
    script = Judge()
    with ScriptedUpstream(script) as up:
        yield up, script


@pytest.mark.slow
def test_worker_replays_judges_and_reports_agreement(
        tmp_path: Path, judge: tuple[ScriptedUpstream, Judge]) -> None:
    upstream, script = judge
    server = start(tmp_path, upstream, usd=1.0)
    try:
        local_calls(server, N)
        report = wait_for(server.home, N)
        time.sleep(0.5)  # the worker exports its gauges after the round
        metrics = httpx.get(server.base_url + "/metrics", timeout=10).text
    finally:
        server.stop()
    (row,) = report["routes"]
    assert row["route"] == "routes.0" and row["feature"] == "audited"
    assert 'devloop_audit_agreement_rate{feature="audited",route="routes.0"} 0.6667' in metrics
    assert row["sampled"] == N and row["judged"] == 3 and row["errors"] == 1
    assert row["agreement_rate"] == pytest.approx(2 / 3, abs=1e-3)
    # 4 replays and 4 verdicts at 20 input / 10 output tokens, $1 / $2 per million
    assert row["cost_usd"] == pytest.approx(8 * (20 * 1 + 10 * 2) / 1e6)
    with sqlite3.connect(server.db_path) as conn:
        sampled = conn.execute("SELECT count(*) FROM calls WHERE audit_sampled = 1").fetchone()
        bodies = [r[0] for r in conn.execute("SELECT request_json FROM audit_samples")]
        errors = [r[0] for r in conn.execute(
            "SELECT error FROM audit_samples WHERE status = 'error'")]
    assert sampled[0] == N and len(bodies) == N
    assert not any(SECRET in b for b in bodies) and any("[REDACTED]" in b for b in bodies)
    assert not any(SECRET in json.dumps(b) for b in upstream.bodies())  # never sent upstream
    assert errors and errors[0].startswith("unparseable verdict")


@pytest.mark.slow
def test_budget_caps_what_sampling_spends(tmp_path: Path,
                                          judge: tuple[ScriptedUpstream, Judge]) -> None:
    upstream, _ = judge
    # one sample (a replay and a verdict) costs $0.00008: a $0.0001 budget pays for two
    server = start(tmp_path, upstream, usd=0.0001)
    try:
        local_calls(server, N)
        report = wait_for(server.home, 2)
        time.sleep(1.5)  # several more worker rounds
        report = audit_json(server.home)
    finally:
        server.stop()
    (row,) = report["routes"]
    assert row["judged"] + row["errors"] == 2
    assert row["cost_usd"] <= 0.0001 + 0.00008


@pytest.mark.parametrize("text,verdict", [
    ('{"verdict": "agree"}', True), ('{"agree": false}', False), ("Disagree.", False),
    ("VERDICT: AGREE", True), ("yes", True), ("The answers are close.", None), ("", None),
    ('{"verdict": "maybe"}', None),
])
def test_verdict_parsing_fails_closed(text: str, verdict: bool | None) -> None:
    assert parse_verdict(text) is verdict


def test_redaction_of_api_key_like_strings() -> None:
    redact = make_redactor([r"ACME-\d{6}"])
    text = ("keys: sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAA AKIAABCDEFGHIJKLMNOP "
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789 Bearer abcdefghijklmnopqrstu "
            "api_key=hunter2hunter2 ACME-123456; keep: the sky is blue")
    out = redact(text)
    assert out.count("[REDACTED]") == 6 and "keep: the sky is blue" in out
