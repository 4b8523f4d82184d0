"""`devloop eval --batch` against scripted provider Batch APIs on loopback: Anthropic Message
Batches and OpenAI Files + Batches. Results map to cases; reports and ledger rows carry batch
prices with the batch id; a run killed mid-batch resumes polling the same batch."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from devloop.cli import cli
from devloop.money import format_usd
from devloop.pricing import lookup_model
from tests.batch.batch_upstream import COMPLETION_TOKENS, PROMPT_TOKENS, BatchUpstream
from tests.batch.conftest import evalset, ledger, profile, provider_batches
from tests.helpers import ROOT, base_env

ANTHROPIC = "anthropic/claude-sonnet-4-6"
OPENAI = "openai/gpt-4o-mini"


def env(home: Path) -> dict[str, str]:
    return {"DEVLOOP_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "ANTHROPIC_API_KEY": "sk-ant-loopback", "OPENAI_API_KEY": "sk-loopback"}


def devloop(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env(home), catch_exceptions=False)


def api_base(up: BatchUpstream, model: str) -> str:
    return up.base_url + ("/v1" if model.startswith("openai/") else "")


def sync_cost(model: str) -> float:
    price = lookup_model(model)
    assert price is not None
    return price.cost(PROMPT_TOKENS, COMPLETION_TOKENS)


def batch_cost(model: str) -> float:
    """Half the synchronous price, or the map's own batch fields (gpt-4o-mini has them)."""
    from devloop.pricing import cost_map_entry

    entry = cost_map_entry(model) or {}
    if "input_cost_per_token_batches" in entry:
        return (PROMPT_TOKENS * entry["input_cost_per_token_batches"]
                + COMPLETION_TOKENS * entry["output_cost_per_token_batches"])
    return sync_cost(model) / 2


def worst_case(stderr: str) -> float:
    m = re.search(r"worst-case cost \$([0-9.,]+)", stderr)
    assert m, stderr
    return float(m.group(1).replace(",", ""))


@pytest.mark.parametrize("model", [ANTHROPIC, OPENAI])
def test_eval_batch_maps_results_and_books_batch_prices(model: str, upstream: BatchUpstream,
                                                         tmp_path: Path) -> None:
    home, prof = tmp_path / "home", profile(tmp_path / "p.yaml", model)
    path = evalset(tmp_path / "greet.yaml")
    base = api_base(upstream, model)
    # the synchronous estimate, refused by --max-cost 0 before anything is called
    sync_res = devloop(home, "eval", str(path), "--profile", str(prof), "--api-base", base,
                       "--max-cost", "0")
    assert sync_res.exit_code == 2 and upstream.state.creates == 0
    sync_estimate = worst_case(sync_res.stderr)
    res = devloop(home, "eval", str(path), "--batch", "--profile", str(prof), "--api-base", base,
                  "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"),
                  "--max-cost", f"{sync_estimate * 0.75:.6f}")  # only the batch price fits
    assert res.exit_code == 0, res.output + res.stderr
    assert worst_case(res.stderr) == pytest.approx(sync_estimate / 2, rel=0.02, abs=1e-4)
    # one provider batch with every case, in the provider's own request format
    assert upstream.state.creates == 1
    sent = upstream.state.batch_requests[0]
    assert {r["custom_id"] for r in sent} == {"alice", "bob", "carol"}
    if model == ANTHROPIC:
        params = sent[0]["params"]
        assert params["model"] == "claude-sonnet-4-6" and params["max_tokens"] == 200
        assert params["system"] == "You are a terse assistant."
        assert [m["role"] for m in params["messages"]] == ["user"]
        assert set(upstream.state.keys) == {"sk-ant-loopback"}
    else:
        assert sent[0]["url"] == "/v1/chat/completions"
        assert sent[0]["body"]["model"] == "gpt-4o-mini"
    data = json.loads((tmp_path / "r.json").read_text())
    run = data["runs"][0] if "runs" in data else data
    batch_id = run["batch_id"]
    assert batch_id and run["batch"] is True
    cases = {c["id"]: c for c in run["cases"]}
    assert {k: c["pass"] for k, c in cases.items()} == {"alice": True, "bob": True,
                                                       "carol": False}
    assert "Alice" in cases["alice"]["output"] and "Bob" in cases["bob"]["output"]
    expected = batch_cost(model)
    assert expected == pytest.approx(sync_cost(model) / 2)
    for c in cases.values():
        assert c["cost_usd"] == pytest.approx(expected, rel=1e-6)
    props = {p.get("name"): p.get("value")
             for p in ET.parse(tmp_path / "r.xml").getroot().iter("property")}
    assert props["batch_id"] == batch_id
    assert props["cost_usd"] == format_usd(3 * expected)
    rows = ledger(home / "devloop.db")
    assert len(rows) == 3 and {r["batch_id"] for r in rows} == {batch_id}
    for r in rows:
        assert r["cost_usd"] == pytest.approx(expected)
        # an eval run is devloop's own traffic: booked, never counted as saved
        assert r["counterfactual_usd"] == pytest.approx(expected) and r["saved_usd"] == 0
        assert r["origin"] == "eval"
        assert r["feature"] == "eval-greet" and r["tier"] == "frontier"
        assert (r["prompt_tokens"], r["completion_tokens"]) == (PROMPT_TOKENS,
                                                                COMPLETION_TOKENS)
    assert [b["status"] for b in provider_batches(home / "devloop.db")] == ["ended"]
    listed = devloop(home, "batches", "list", "--json")
    assert json.loads(listed.stdout)["batches"][0]["id"] == batch_id


def _wait_for_batch_row(db: Path, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "eval exited before submitting"
        if db.exists():
            try:
                rows = provider_batches(db)
            except sqlite3.OperationalError:  # the migration has not run yet
                rows = []
            if rows:
                return rows[0]
        time.sleep(0.2)
    raise AssertionError("no provider batch was recorded")


def _start_eval(tmp_path: Path, home: Path, model: str, up: BatchUpstream
                ) -> subprocess.Popen[bytes]:
    prof = profile(tmp_path / "p.yaml", model)
    path = evalset(tmp_path / "greet.yaml")
    full = base_env(home)
    full.update(env(home))
    return subprocess.Popen(
        [sys.executable, "-m", "devloop", "eval", str(path), "--batch", "--profile", str(prof),
         "--api-base", api_base(up, model), "-q"],
        cwd=ROOT, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("model", [ANTHROPIC, OPENAI])
def test_a_restart_mid_batch_resumes_polling(model: str, upstream: BatchUpstream,
                                             tmp_path: Path) -> None:
    home = tmp_path / "home"
    upstream.state.hold = True
    proc = _start_eval(tmp_path, home, model, upstream)
    try:
        row = _wait_for_batch_row(home / "devloop.db", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert upstream.state.creates == 1
    listed = devloop(home, "batches", "list")
    assert row["id"] in listed.stdout and "3 requests" in listed.stdout
    status = devloop(home, "batches", "status", row["id"])
    assert status.exit_code == 0 and "status: in_progress" in status.stdout
    upstream.state.hold = False  # the provider finishes while devloop is down
    res = devloop(home, "eval", str(tmp_path / "greet.yaml"), "--batch", "--profile",
                  str(tmp_path / "p.yaml"), "--api-base", api_base(upstream, model),
                  "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 0, res.output + res.stderr
    assert f"batch {row['id']} resumed" in res.stderr
    assert upstream.state.creates == 1  # polled, not submitted (or paid for) again
    data = json.loads((tmp_path / "r.json").read_text())
    run = data["runs"][0] if "runs" in data else data
    assert run["batch_id"] == row["id"] and run["passed"] == 2
    assert {r["batch_id"] for r in ledger(home / "devloop.db")} == {row["id"]}


def test_batches_cancel_reaches_the_provider(upstream: BatchUpstream, tmp_path: Path) -> None:
    home = tmp_path / "home"
    upstream.state.hold = True
    proc = _start_eval(tmp_path, home, ANTHROPIC, upstream)
    try:
        row = _wait_for_batch_row(home / "devloop.db", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    res = devloop(home, "batches", "cancel", row["id"])
    assert res.exit_code == 0 and upstream.state.cancels == 1
    assert "cancelling" in res.stdout
    # the resumed run sees the cancelled requests as errors, and says so
    res = devloop(home, "eval", str(tmp_path / "greet.yaml"), "--batch", "--profile",
                  str(tmp_path / "p.yaml"), "--api-base", upstream.base_url)
    assert res.exit_code == 2 and "batch request canceled" in res.stdout + res.stderr
    again = devloop(home, "batches", "cancel", row["id"])
    assert again.exit_code == 2 and "already ended" in again.stderr
    missing = devloop(home, "batches", "status", "msgbatch_nope")
    assert missing.exit_code == 2
    assert missing.stderr.startswith("devloop: error: batches: batch_id: no batch")


def test_a_provider_without_a_batch_api(upstream: BatchUpstream, tmp_path: Path) -> None:
    home, model = tmp_path / "home", "hosted_vllm/stub-model"
    prof = profile(tmp_path / "p.yaml", model)
    path = evalset(tmp_path / "greet.yaml")
    base = upstream.base_url + "/v1"
    res = devloop(home, "eval", str(path), "--batch", "--profile", str(prof), "--api-base", base)
    assert res.exit_code == 2 and "provider 'hosted_vllm'" in res.stderr
    assert "--batch=auto" in res.stderr and upstream.state.chat_requests == 0
    res = devloop(home, "eval", str(path), "--batch=auto", "--profile", str(prof),
                  "--api-base", base)
    assert res.exit_code == 0, res.output + res.stderr
    assert "running synchronously" in res.stderr and "provider 'hosted_vllm'" in res.stderr
    assert upstream.state.chat_requests == 3 and upstream.state.creates == 0


def test_the_anthropic_key_comes_from_the_environment_only(upstream: BatchUpstream,
                                                           tmp_path: Path) -> None:
    home = tmp_path / "home"
    prof = profile(tmp_path / "p.yaml", ANTHROPIC)
    path = evalset(tmp_path / "greet.yaml")
    e = env(home)
    e.pop("ANTHROPIC_API_KEY")
    saved = os.environ.pop("ANTHROPIC_API_KEY", None)
    try:
        res = CliRunner().invoke(cli, ["eval", str(path), "--batch", "--profile", str(prof),
                                       "--api-base", upstream.base_url], env=e)
    finally:
        if saved is not None:
            os.environ["ANTHROPIC_API_KEY"] = saved
    assert res.exit_code == 2 and "ANTHROPIC_API_KEY" in res.output + res.stderr
    assert upstream.state.creates == 0
