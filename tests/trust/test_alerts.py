"""Must show 4: a seeded ledger with a spend spike, a cache-hit drop and an error burst fires
exactly those three rules (CLI, /metrics, a webhook receiver on loopback); a quiet one none."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from devloop.alerts import evaluate
from devloop.config import Profile
from devloop.store.calls import CallRecord, insert_call_job
from devloop.store.db import open_db
from tests.helpers import ROOT, base_env, start_server, write_profile
from tests.trust.scripted_upstream import ScriptedUpstream

DAY = 86400.0
PROFILE = """
name: alerting
production_model: anthropic/claude-sonnet-4-5
tiers:
  embedded: {{backend: embedded, model: smollm2-135m}}
routes: [{{tier: embedded}}]
alerts: {{webhook: "{hook}", interval: 0.3}}
"""
SPIKE = {"spend_spike", "response_cache_hit_rate", "error_rate"}


def rec(ts: float, i: int, cost: float = 0.01, hit: bool = False, status: int = 200,
        completion: int = 100) -> CallRecord:
    return CallRecord(request_id=f"r{ts:.0f}-{i}", endpoint="chat", tier="frontier",
                      backend="litellm", model="m", route_reason="seed",
                      cache="hit" if hit else "miss", feature="chat", prompt_tokens=50,
                      completion_tokens=completion if status == 200 else 0, status=status,
                      cost_usd=0.0 if hit or status != 200 else cost, ts=ts)


def seed(home: Path, spike: bool, now: float) -> None:
    home.mkdir(parents=True, exist_ok=True)
    conn = open_db(home / "devloop.db").conn  # migrated
    rows: list[CallRecord] = []
    for day in range(1, 8):  # the trailing week: $0.20 a day, half the calls cache hits
        ts = now - day * DAY - 3600
        rows += [rec(ts - i, i, hit=i % 2 == 0) for i in range(40)]
    if spike:  # today: $1.90, 2 hits in 50, 10 of 50 calls failed upstream
        rows += [rec(now - 600 - i, i, cost=0.05, hit=i < 2) for i in range(40)]
        rows += [rec(now - 300 - i, 100 + i, status=502) for i in range(10)]
    else:
        rows += [rec(now - 600 - i, i, hit=i % 2 == 0) for i in range(40)]
    with conn:
        for r in rows:
            insert_call_job(r)(conn)
    conn.close()


def cli_alerts(home: Path) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", "devloop", "alerts", "--json"], cwd=ROOT,
                         env=base_env(home), capture_output=True, text=True, timeout=120,
                         check=True)
    alerts: list[dict[str, Any]] = json.loads(out.stdout)["alerts"]
    return alerts


def test_spike_ledger_fires_exactly_the_three_rules(tmp_path: Path) -> None:
    seed(tmp_path / "home", spike=True, now=time.time())
    alerts = cli_alerts(tmp_path / "home")
    assert {a["rule"] for a in alerts} == SPIKE and len(alerts) == 3
    spend = next(a for a in alerts if a["rule"] == "spend_spike")
    # today 38 paid calls at $0.05; the week before 20 a day at $0.01: 2 x $0.20
    assert spend["value"] == pytest.approx(1.9) and spend["threshold"] == pytest.approx(0.4)
    assert set(spend) == {"rule", "scope", "value", "threshold", "since", "message"}
    assert "devloop spend" in spend["message"]  # where to look


def test_quiet_ledger_fires_none(tmp_path: Path) -> None:
    seed(tmp_path / "home", spike=False, now=time.time())
    assert cli_alerts(tmp_path / "home") == []


def test_profile_overrides_and_disables_rules(tmp_path: Path) -> None:
    now = time.time()
    seed(tmp_path / "home", spike=True, now=now)
    profile = Profile.model_validate({
        "name": "p", "production_model": "m",
        "tiers": {"embedded": {"backend": "embedded", "model": "x"}},
        "routes": [{"tier": "embedded"}],
        "alerts": {"rules": [{"rule": "spend_spike", "factor": 10}], "disabled": ["error_rate"]}})
    conn = open_db(tmp_path / "home" / "devloop.db").conn
    try:
        assert {a.rule for a in evaluate(conn, profile, now)} == {"response_cache_hit_rate"}
    finally:
        conn.close()


@pytest.mark.slow
def test_server_sends_them_to_the_webhook_once_and_exports_gauges(tmp_path: Path) -> None:
    seed(tmp_path / "home", spike=True, now=time.time())
    with ScriptedUpstream(lambda body: "") as receiver:
        profile = write_profile(tmp_path / "alerting.yaml", PROFILE.format(hook=receiver.hook_url))
        server = start_server(profile, tmp_path / "home")
        try:
            deadline = time.monotonic() + 60
            while not receiver.webhooks:
                assert time.monotonic() < deadline, server.output()
                time.sleep(0.1)
            time.sleep(1.0)  # more evaluations: an alert already sent is not sent again
            metrics = httpx.get(server.base_url + "/metrics", timeout=10).text
        finally:
            server.stop()
    assert len(receiver.webhooks) == 1
    (payload,) = receiver.webhooks
    assert isinstance(payload["text"], str)  # Slack-compatible
    assert all(rule in payload["text"] for rule in SPIKE)
    assert {a["rule"] for a in payload["devloop_alerts"]} == SPIKE
    for rule in SPIKE:
        assert f'devloop_alert_firing{{rule="{rule}",scope="global"}} 1.0' in metrics


def test_bad_alert_rule_is_refused(tmp_path: Path) -> None:
    path = write_profile(tmp_path / "bad.yaml", "name: b\nproduction_model: m\ntiers:\n  "
                         "embedded: {backend: embedded, model: x}\nroutes: [{tier: embedded}]\n"
                         "alerts: {rules: "
                         "[{rule: spend_spik}]}\n")
    out = subprocess.run([sys.executable, "-m", "devloop", "alerts", "--profile", str(path)],
                         cwd=ROOT, env=base_env(tmp_path / "home"), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "alerts.rules.0.rule" in out.stderr and "unknown rule 'spend_spik'" in out.stderr
