"""Issue 3, end to end: calls through every tier (a second devloop is the upstream of the
local, shared and frontier tiers), streamed and not, on both protocols; then `devloop spend`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import ROOT, RunningServer, base_env, start_server, write_profile

pytestmark = pytest.mark.slow

PRODUCTION = "anthropic/claude-sonnet-4-5"
UPSTREAM = """
name: upstream
production_model: anthropic/claude-sonnet-4-5
tiers:
  embedded: {backend: embedded, model: smollm2-135m}
routes:
  - {tier: embedded}
cache: {enabled: false}
"""
TIERS = ("local", "embedded", "shared", "frontier")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer,
                                                                         RunningServer]]:
    folder = tmp_path_factory.mktemp("tiers")
    up = start_server(write_profile(folder / "up.yaml", UPSTREAM), folder / "up-home")
    gateway_profile = f"""
name: tiers
production_model: {PRODUCTION}
tiers:
  local:    {{backend: ollama, model: embedded, base_url: "{up.base_url}"}}
  embedded: {{backend: embedded, model: smollm2-135m}}
  shared:   {{backend: openai, base_url: "{up.base_url}/v1", model: smollm2-135m}}
  frontier: {{backend: litellm, model: openai/smollm2-135m, api_base: "{up.base_url}/v1",
              models: [openai/embedded]}}
routes:
  - {{tier: local}}
fallbacks: []
cache: {{enabled: false}}
prices:
  openai/smollm2-135m: {{input: 3.0, output: 15.0}}
"""
    gw = start_server(write_profile(folder / "gw.yaml", gateway_profile), folder / "gw-home")
    yield gw, up
    gw.stop()
    up.stop()


def rows(server: RunningServer, where: str = "1", args: tuple[Any, ...] = ()
         ) -> list[dict[str, Any]]:
    with sqlite3.connect(server.db_path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(f"SELECT * FROM calls WHERE {where}", args)]


def spend(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devloop", "spend", *args], cwd=ROOT,
                          env=base_env(server.home), capture_output=True, text=True, timeout=60)


def chat(tier: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"model": tier, "max_tokens": 6, "temperature": 0.0,
            "messages": [{"role": "user", "content": text}], **extra}


def litellm_cost(model: str, prompt: int, completion: int) -> float:
    from devloop.backends.litellm import import_litellm

    return float(sum(import_litellm().cost_per_token(model=model, prompt_tokens=prompt,
                                                     completion_tokens=completion)))


def test_every_tier_is_metered_and_spend_adds_up(servers: tuple[RunningServer,
                                                                RunningServer]) -> None:
    gw, _ = servers
    http = httpx.Client(base_url=gw.base_url, timeout=120)
    plain: dict[str, httpx.Response] = {}
    streamed: dict[str, list[str]] = {}
    for tier in TIERS:
        resp = http.post("/v1/chat/completions", json=chat(tier, f"Say hi from {tier}."))
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-devloop-tier"] == tier
        plain[tier] = resp
        ids = []
        # OpenAI stream without asking for usage: devloop asks upstream (or counts) anyway
        s = http.post("/v1/chat/completions", json=chat(tier, f"Stream hi from {tier}.",
                                                         stream=True))
        assert s.status_code == 200 and s.text.rstrip().endswith("data: [DONE]")
        assert '"error"' not in s.text
        ids.append(s.headers["x-request-id"])
        o = http.post("/api/chat", json={"model": tier, "messages": [
            {"role": "user", "content": f"Ollama hi from {tier}."}],
            "options": {"num_predict": 6, "temperature": 0}})
        last = json.loads(o.text.strip().splitlines()[-1])
        assert last["done"] is True and last["eval_count"] > 0, o.text
        ids.append(o.headers["x-request-id"])
        g = http.post("/api/generate", json={"model": tier, "prompt": "Roses are red,",
                                             "options": {"num_predict": 5}})
        assert json.loads(g.text.strip().splitlines()[-1])["done"] is True
        ids.append(g.headers["x-request-id"])
        streamed[tier] = ids

    for tier, resp in plain.items():
        (row,) = rows(gw, "request_id = ?", (resp.headers["x-request-id"],))
        assert row["tier"] == tier and row["status"] == 200 and row["stream"] == 0
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
        assert row["production_model"] == PRODUCTION
        # the saving of this call travels in its header
        assert float(resp.headers["x-devloop-saved-usd"]) == pytest.approx(row["saved_usd"],
                                                                          abs=1e-8)
        want_cf = litellm_cost(PRODUCTION, row["prompt_tokens"], row["completion_tokens"])
        assert row["counterfactual_usd"] == pytest.approx(want_cf, rel=1e-9)
        if tier == "frontier":
            assert row["cost_usd"] == pytest.approx(
                (3.0 * row["prompt_tokens"] + 15.0 * row["completion_tokens"]) / 1e6)
        else:  # a local call costs nothing and saves its tokens at the production price
            assert row["cost_usd"] == 0.0
            assert row["saved_usd"] == pytest.approx(want_cf, rel=1e-9)

    for tier, ids in streamed.items():
        for rid in ids:
            (row,) = rows(gw, "request_id = ?", (rid,))
            assert row["stream"] == 1 and row["status"] == 200, row
            assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0, row
            assert row["counterfactual_usd"] > 0
            assert (row["cost_usd"] > 0) if tier == "frontier" else (row["cost_usd"] == 0.0)

    out = spend(gw, "--json")
    assert out.returncode == 0, out.stderr
    totals = json.loads(out.stdout)["totals"]
    with sqlite3.connect(gw.db_path) as conn:
        sums = conn.execute("SELECT count(*), sum(prompt_tokens), sum(completion_tokens), "
                            "total(cost_usd), total(counterfactual_usd), total(saved_usd) "
                            "FROM calls").fetchone()
    assert totals["calls"] == sums[0] == 16
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (sums[1], sums[2])
    assert totals["cost_usd"] == pytest.approx(sums[3], abs=1e-9)
    assert totals["counterfactual_usd"] == pytest.approx(sums[4], abs=1e-9)
    assert totals["saved_usd"] == pytest.approx(sums[5], abs=1e-9)
    assert totals["local_share"] == pytest.approx(0.75)
    by_tier = {g["key"]: g for g in json.loads(spend(gw, "--json", "--by", "tier").stdout)
               ["groups"]}
    assert set(by_tier) == set(TIERS) and all(g["calls"] == 4 for g in by_tier.values())


def test_unknown_price_is_unknown(servers: tuple[RunningServer, RunningServer]) -> None:
    gw, _ = servers
    resp = httpx.post(gw.base_url + "/v1/chat/completions", timeout=120,
                      json=chat("openai/embedded", "Hello, unpriced model."))
    assert resp.status_code == 200 and resp.headers["x-devloop-tier"] == "frontier"
    (row,) = rows(gw, "request_id = ?", (resp.headers["x-request-id"],))
    assert row["model"] == "openai/embedded"
    assert row["cost_usd"] is None and row["saved_usd"] is None
    assert row["counterfactual_usd"] > 0
    assert "x-devloop-saved-usd" not in resp.headers  # unknown, so not claimed
    report = json.loads(spend(gw, "--json", "--by", "model").stdout)
    assert report["totals"]["cost_usd"] is None and report["totals"]["unpriced_calls"] == 1
    group = next(g for g in report["groups"] if g["key"] == "openai/embedded")
    assert group["cost_usd"] is None
    text = spend(gw, "--by", "model").stdout
    line = next(ln for ln in text.splitlines() if ln.startswith("openai/embedded"))
    assert "unknown" in line and "$0.0000 " not in line
