"""Issue 12, Must-show 6 and 7: exact-match identifiers, time zones, key history, amounts
with enough digits, counterfactuals labelled per row; devloop's own traffic never "saved";
--no-store writes nothing."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from devloop.periods import seconds_to_period_end
from devloop.store.db import open_db
from tests.anthropic_stub import AnthropicStub
from tests.test_instrument_live import MODEL, cli, rows, serve, spend_json

LA = ZoneInfo("America/Los_Angeles")


def seed(home: Path, calls: list[dict[str, Any]]) -> None:
    """Ledger rows as devloop writes them (the schema comes from devloop's migrations)."""
    home.mkdir(parents=True, exist_ok=True)
    open_db(home / "devloop.db").close()
    conn = sqlite3.connect(home / "devloop.db")
    for i, c in enumerate(calls):
        row = {"request_id": f"r{i}", "endpoint": "chat", "tier": "frontier", "backend": "litellm",
               "model": MODEL, "cache": "miss", "prompt_tokens": 100, "completion_tokens": 10,
               "status": 200, "cost_usd": 0.001, "counterfactual_usd": 0.001, "saved_usd": 0.0,
               "production_model": MODEL, **c}
        cols = ", ".join(f"[{k}]" for k in row)
        conn.execute(f"INSERT INTO calls ({cols}) VALUES ({', '.join('?' * len(row))})",
                     list(row.values()))
    conn.commit()
    conn.close()


# -- exact match ---------------------------------------------------------------------------------
def test_budget_scopes_match_names_exactly(tmp_path: Path) -> None:
    """`feature:ci_1` is not `ci-1`, `Chat` is not `chat`, `a%b` is not `aXb`: another
    feature's call in flight never holds this feature's budget."""
    with AnthropicStub() as stub:
        stub.state.answer_tokens = 5
        server = serve(tmp_path, stub, """default_max_tokens: 16
budgets:
  - {scope: 'feature:ci_1', usd: 0.002}
  - {scope: 'feature:ci-1', usd: 10}
  - {scope: 'feature:Chat', usd: 0.002}
  - {scope: 'feature:chat', usd: 10}
  - {scope: 'feature:a%b', usd: 0.002}
  - {scope: 'feature:aXb', usd: 10}
""")
        try:
            for small, big in (("ci_1", "ci-1"), ("Chat", "chat"), ("a%b", "aXb")):
                stub.state.delay = 1.5
                holder = threading.Thread(target=httpx.post, args=(
                    server.base_url + "/v1/chat/completions",), kwargs={
                    "json": {"model": "frontier", "max_tokens": 600,  # holds ~$0.009
                             "messages": [{"role": "user", "content": "long job"}]},
                    "headers": {"X-Devloop-Feature": big}, "timeout": 30})
                holder.start()
                time.sleep(0.7)  # the big call's reservation is held now
                stub.state.delay = 0.0
                r = httpx.post(server.base_url + "/v1/chat/completions", json={
                    "model": "frontier", "messages": [{"role": "user", "content": "hi"}]},
                    headers={"X-Devloop-Feature": small}, timeout=30)
                holder.join()
                assert r.status_code == 200, (small, r.text)
        finally:
            server.stop()
    report = spend_json(server.home, "--by", "feature")
    keys = sorted(g["key"] for g in report["groups"])
    assert keys == sorted(["ci_1", "ci-1", "Chat", "chat", "a%b", "aXb"])


def test_spend_groups_and_selects_features_exactly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    now = time.time()
    seed(home, [{"feature": "ci_1", "ts": now}, {"feature": "ci-1", "ts": now},
                {"feature": "Chat", "ts": now}, {"feature": "chat", "ts": now},
                {"feature": "chat", "ts": now}])
    groups = {g["key"]: g["calls"] for g in spend_json(home, "--by", "feature")["groups"]}
    assert groups == {"ci_1": 1, "ci-1": 1, "Chat": 1, "chat": 2}


# -- time zone -------------------------------------------------------------------------------------
def test_spend_by_day_groups_in_the_zone_and_sorts_by_date(tmp_path: Path) -> None:
    home = tmp_path / "home"
    evening = datetime(2026, 11, 27, 20, 30, tzinfo=LA).timestamp()  # 04:30 UTC on the 28th
    seed(home, [{"ts": evening}, {"ts": evening + 60},
                *({"ts": datetime(2026, 11, 28, 12, i, tzinfo=LA).timestamp()} for i in range(5)),
                {"ts": datetime(2026, 11, 26, 9, tzinfo=LA).timestamp()}])
    env = {"DEVLOOP_TIMEZONE": "America/Los_Angeles"}
    groups = spend_json(home, "--by", "day", env=env)["groups"]
    assert [(g["key"], g["calls"]) for g in groups] == [
        ("2026-11-26", 1), ("2026-11-27", 2), ("2026-11-28", 5)]
    utc = spend_json(home, "--by", "day", env={"DEVLOOP_TIMEZONE": "UTC"})["groups"]
    assert [(g["key"], g["calls"]) for g in utc] == [("2026-11-26", 1), ("2026-11-28", 7)]


def test_budget_retry_after_counts_to_midnight_in_the_zone(tmp_path: Path) -> None:
    with AnthropicStub() as stub:
        server = serve(tmp_path, stub, "budgets:\n  - {scope: 'tier:frontier', usd: 0.00001}\n",
                       env={"DEVLOOP_TIMEZONE": "Asia/Tokyo"})
        try:
            r = httpx.post(server.base_url + "/v1/chat/completions", json={
                "model": "frontier", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
            want = seconds_to_period_end("day", time.time(), ZoneInfo("Asia/Tokyo"))
        finally:
            server.stop()
    assert r.status_code == 429
    assert abs(int(r.headers["Retry-After"]) - want) <= 5
    assert "$0.00001/day" in r.json()["error"]["message"]


# -- amounts and counterfactual labels ---------------------------------------------------------------
def test_small_amounts_show_digits_and_rows_keep_their_production_model(tmp_path: Path) -> None:
    home = tmp_path / "home"
    now = time.time()
    seed(home, [{"ts": now, "cost_usd": 0.0000123, "counterfactual_usd": 0.0000456,
                 "saved_usd": 0.0000333, "production_model": "anthropic/claude-sonnet-4-5"},
                {"ts": now, "cost_usd": 0.0, "counterfactual_usd": 0.002, "saved_usd": 0.002,
                 "production_model": "openai/gpt-4o", "tier": "local"}])
    out = cli(home, "spend", "--by", "tier")
    assert out.returncode == 0, out.stderr
    assert "$0.000012" in out.stdout  # not "$0.0000"
    assert "anthropic/claude-sonnet-4-5" in out.stdout and "openai/gpt-4o" in out.stdout
    groups = {g["key"]: g for g in spend_json(home, "--by", "tier")["groups"]}
    assert groups["local"]["production_models"] == ["openai/gpt-4o"]
    assert groups["frontier"]["production_models"] == ["anthropic/claude-sonnet-4-5"]


# -- key history --------------------------------------------------------------------------------------
def test_revoked_key_stays_listed_and_a_new_key_with_its_name_starts_fresh(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli(home, "keys", "create", "bob", "--budget", "0.01").returncode == 0
    time.sleep(0.01)
    seed(home, [{"key_id": "bob", "user": "bob", "ts": time.time(), "cost_usd": 0.009}])
    assert cli(home, "keys", "revoke", "bob").returncode == 0
    time.sleep(0.01)
    assert cli(home, "keys", "create", "bob", "--budget", "0.01").returncode == 0
    listed = json.loads(cli(home, "keys", "list", "--json").stdout)
    assert [(k["name"], k["status"], k["calls"]) for k in listed] == [
        ("bob", "revoked", 1), ("bob", "active", 0)]
    assert listed[0]["spend_usd"] == 0.009 and listed[1]["spend_usd"] == 0.0
    assert listed[1]["period_spend_usd"] == 0.0
    text = cli(home, "keys", "list", "--all").stdout
    assert text.count("bob") == 2 and "revoked" in text


# -- Must-show 7: devloop's own traffic -------------------------------------------------------------
TINY_EVALSET = """name: tiny
threshold: 0.5
max_tokens: 4
prompt:
  messages:
    - {role: user, content: "Say {{word}}"}
cases:
  - {id: a, vars: {word: yes}, assert: [{type: not-contains, value: zz-never-zz}]}
"""


def test_check_changes_no_saved_figure_and_no_store_writes_nothing(
        tmp_path: Path, embedded_profile: Path) -> None:
    home = tmp_path / "home"
    now = time.time()
    seed(home, [{"ts": now, "tier": "local", "cost_usd": 0.0, "counterfactual_usd": 0.01,
                 "saved_usd": 0.01, "feature": "client-app"}])
    before = spend_json(home)["totals"]
    tui_before = tui_saved(home)
    evalset = tmp_path / "evalsets" / "tiny.yaml"
    evalset.parent.mkdir(parents=True)
    evalset.write_text(TINY_EVALSET)
    args = ("check", "--profile", str(embedded_profile), str(evalset), "--stage", "draft")
    out = cli(home, *args, "--no-store")
    assert out.returncode in (0, 1), out.stderr
    assert len(rows_at(home)) == 1  # --no-store: not a row
    out = cli(home, *args)
    assert out.returncode in (0, 1), out.stderr
    after = spend_json(home)["totals"]
    own = [r for r in rows_at(home) if r["feature"] != "client-app"]
    assert own and all(r["origin"] == "check" and r["saved_usd"] == 0 for r in own)
    assert after["saved_usd"] == before["saved_usd"]
    assert after["counterfactual_usd"] == before["counterfactual_usd"]
    assert after["own_calls"] == len(own)
    groups = {g["key"]: g for g in spend_json(home, "--by", "feature")["groups"]}
    assert all(g["saved_usd"] == 0 for k, g in groups.items() if k != "client-app")
    # an eval run against the production model (a loopback Anthropic upstream)
    with AnthropicStub() as stub:
        stub.state.answer_tokens = 3
        out = cli(home, "eval", str(evalset), "--model", MODEL, "--api-base", stub.base_url,
                  env={"ANTHROPIC_API_KEY": "sk-stub"})
        assert out.returncode in (0, 1), out.stderr
        assert stub.bodies()  # it ran, for real
    final = spend_json(home)["totals"]
    assert (final["saved_usd"], final["counterfactual_usd"]) == (
        before["saved_usd"], before["counterfactual_usd"])
    assert tui_saved(home) == tui_before  # the dashboard's and Spend screen's figures


def tui_saved(home: Path) -> tuple[float | None, ...]:
    """The saved figures the TUI's Dashboard and Spend screens show."""
    from devloop.store.reports import LedgerReader

    reader = LedgerReader(home / "devloop.db")
    try:
        now = time.time()
        summary, view = reader.summary(now), reader.spend(now, 7)
        return summary.saved_today, summary.saved_week, view.total_saved
    finally:
        reader.close()


def rows_at(home: Path) -> list[dict[str, Any]]:
    class _S:  # rows() reads server.db_path
        db_path = home / "devloop.db"
    return rows(_S())  # type: ignore[arg-type]
