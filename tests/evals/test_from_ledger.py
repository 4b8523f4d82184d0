"""The routing audit: `store_bodies: true` records chat bodies beside their ledger rows, and
`devloop eval --from-ledger` replays them on the production model and grades agreement.

Real parts throughout: a devloop server whose local tier (no Ollama) falls back to the embedded
SmolLM2, and the "production model" is that same devloop's embedded tier reached through
litellm as openai/embedded at <devloop>/v1.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from devloop.evals.audit import AUDIT_FEATURE, choose, parse_sample
from devloop.store.bodies import StoredCall, load_bodies
from devloop.store.db import open_db
from devloop.store.spend import LOCAL_TIERS
from tests.conftest import EMBEDDED_PROFILE
from tests.helpers import RunningServer, start_server, write_profile

# The embedded-only profile, recording bodies; the price makes the audit's cost a number.
AUDIT_PROFILE = EMBEDDED_PROFILE + """
store_bodies: true
prices:
  openai/embedded: {input: 1.0, output: 2.0}
"""
SECRET = "sk-never-store-this-9f3a"


@dataclass
class Sent:
    request_id: str
    feature: str | None
    content: str


@dataclass
class AuditServer:
    server: RunningServer
    profile: Path
    chats: list[Sent]  # the calls that must have bodies, in the order sent

    def cli(self, *args: str, home: Path | None = None) -> Result:
        from devloop.commands.eval import eval_cmd

        env = {"DEVLOOP_HOME": str(home or self.server.home),
               "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        argv = ["--from-ledger", *args, "--profile", str(self.profile)]
        return CliRunner().invoke(eval_cmd, argv, env=env, catch_exceptions=False)

    @property
    def api_base(self) -> str:
        return self.server.base_url + "/v1"


def _chat(client: httpx.Client, text: str, feature: str | None, stream: bool = False
          ) -> tuple[str, str]:
    headers = {"Authorization": f"Bearer {SECRET}"}
    if feature:
        headers["X-Devloop-Feature"] = feature
    body = {"model": "auto", "temperature": 0, "max_tokens": 12, "stream": stream,
            "messages": [{"role": "system", "content": "You are terse."},
                         {"role": "user", "content": text}]}
    r = client.post("/v1/chat/completions", json=body, headers=headers)
    assert r.status_code == 200, r.text
    rid = r.headers["x-request-id"]
    if not stream:
        return rid, r.json()["choices"][0]["message"]["content"]
    parts = []
    for line in r.text.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices", []):
                parts.append(choice.get("delta", {}).get("content") or "")
    return rid, "".join(parts)


@pytest.fixture(scope="module")
def audit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditServer]:
    root = tmp_path_factory.mktemp("audit")
    profile = write_profile(root / "audit.yaml", AUDIT_PROFILE)
    server = start_server(profile, root / "home")
    chats: list[Sent] = []
    try:
        with httpx.Client(base_url=server.base_url, timeout=120) as client:
            for text, feature, stream in [("Say hello to Alice.", "greet", False),
                                          ("Say hello to Bob.", "greet", True),
                                          ("Summarize: the cat sat on the mat.", "summarize", False),
                                          ("Name a colour.", None, False)]:
                rid, content = _chat(client, text, feature, stream)
                chats.append(Sent(rid, feature, content))
            _chat(client, "Say hello to Alice.", "greet")  # a cache hit: no new body
            # Not chat: completions and embeddings are never stored.
            assert client.post("/v1/completions", json={
                "model": "auto", "prompt": "def add(a, b):", "max_tokens": 8,
                "temperature": 0}).status_code == 200
            assert client.post("/v1/embeddings", json={
                "model": "embedded", "input": "hello"}).status_code == 200
        yield AuditServer(server, profile, chats)
    finally:
        server.stop()


def _bodies(db: Path) -> list[dict[str, object]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM call_bodies ORDER BY ts")]


def _ledger_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM calls").fetchone()[0])


# -- storing -----------------------------------------------------------------------------------
def test_bodies_stored_for_successful_chat_calls(audit_server: AuditServer) -> None:
    db = audit_server.server.db_path
    rows = [r for r in _bodies(db) if r["feature"] != AUDIT_FEATURE]
    assert [r["request_id"] for r in rows] == [s.request_id for s in audit_server.chats]
    for row, sent in zip(rows, audit_server.chats, strict=True):
        assert row["feature"] == sent.feature
        assert row["tier"] == "embedded" and row["model"] == "smollm2-135m"
        assert row["response_text"] == sent.content
        request = json.loads(str(row["request_json"]))
        assert request["messages"][0] == {"role": "system", "content": "You are terse."}
        assert request["max_tokens"] == 12 and request["temperature"] == 0
    with sqlite3.connect(db) as conn:  # each body belongs to its ledger row
        joined = conn.execute("SELECT count(*) FROM call_bodies b JOIN calls c "
                              "ON c.request_id = b.request_id AND c.status = 200").fetchone()[0]
        dump = "\n".join(str(r) for r in conn.execute("SELECT * FROM call_bodies"))
    assert joined == len(rows)
    assert SECRET not in dump and "authorization" not in dump.lower()  # never headers


def test_nothing_stored_by_default(eval_server: RunningServer) -> None:
    """The eval server's profile does not set store_bodies: calls leave no bodies."""
    r = httpx.post(eval_server.base_url + "/v1/chat/completions", timeout=120, json={
        "model": "embedded", "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "user", "content": f"Default storage check {time.time()}"}]})
    assert r.status_code == 200
    assert _bodies(eval_server.db_path) == []
    assert _ledger_count(eval_server.db_path) >= 1


# -- the audit -----------------------------------------------------------------------------------
def test_audit_replays_every_sampled_call(audit_server: AuditServer, tmp_path: Path) -> None:
    report = tmp_path / "audit.json"
    res = audit_server.cli("--sample", "100%", "--model", "openai/embedded", "--api-base",
                           audit_server.api_base, "--json", str(report), "--since", "1h")
    assert res.exit_code == 0, res.output
    assert "routing audit on openai/embedded (similar): agreement " in res.stdout
    data = json.loads(report.read_text())
    sent = audit_server.chats
    assert data["model"] == "openai/embedded" and data["grader"] == "similar"
    assert data["sampled"] == data["population"] == len(sent) == data["calls"]
    assert [r["request_id"] for r in data["results"]] == [s.request_id for s in sent]
    assert data["errors"] == 0 and 0.0 <= data["agreement_rate"] <= 1.0
    assert data["agreed"] + data["disagreed"] == len(sent)
    assert data["agreement_rate"] == round(data["agreed"] / len(sent), 4)
    for result, s in zip(data["results"], sent, strict=True):
        assert isinstance(result["agree"], bool) and result["grader"] in ("similar", "empty")
        assert result["local_text"] == s.content and result["tier"] == "embedded"
        assert result["feature"] == s.feature and result["cost_usd"] > 0
    assert data["cost_usd"] > 0 and data["estimate_usd"] >= data["cost_usd"]
    features = {f["feature"]: f for f in data["features"]}
    assert set(features) == {"greet", "summarize", "(none)"}
    assert features["greet"]["calls"] == 2 and features["summarize"]["calls"] == 1
    # The replays went through the same devloop, booked under the audit's own feature.
    with sqlite3.connect(audit_server.server.db_path) as conn:
        replays = conn.execute("SELECT count(*) FROM calls WHERE feature = ? AND endpoint = "
                               "'chat'", [AUDIT_FEATURE]).fetchone()[0]
    assert replays >= len(sent)


def test_max_cost_refuses_before_calling_and_skips_audit_replays(
        audit_server: AuditServer) -> None:
    db = audit_server.server.db_path
    before = _ledger_count(db)
    res = audit_server.cli("--sample", "100%", "--model", "openai/embedded", "--api-base",
                           audit_server.api_base, "--max-cost", "0.0000001")
    assert res.exit_code == 2, res.output
    assert "--max-cost: worst-case cost" in res.stderr and "nothing was called" in res.stderr
    # Earlier audits' replays are stored too (store_bodies) but never sampled.
    assert f"of {len(audit_server.chats)} stored local calls" in res.stderr
    assert _ledger_count(db) == before


@pytest.mark.slow
def test_auto_falls_back_to_the_judge_without_embeddings(audit_server: AuditServer,
                                                         tmp_path: Path) -> None:
    report = tmp_path / "judge.json"
    res = audit_server.cli("--sample", "1", "--feature", "summ*", "--model", "openai/embedded",
                           "--embedding-model", "openai/no-such-embedder", "--api-base",
                           audit_server.api_base, "--json", str(report), "--quiet")
    assert "embeddings unavailable on openai/no-such-embedder" in res.stderr
    data = json.loads(report.read_text())
    assert data["population"] == 1
    [result] = data["results"]
    assert result["feature"] == "summarize"
    assert "graded with the judge openai/embedded" in res.stderr
    if result.get("error"):  # SmolLM2 may give no JSON verdict: an error, never agreement
        assert res.exit_code == 2 and "the judge gave no verdict" in result["error"]
    else:
        assert res.exit_code == 0, res.output
        assert data["grader"] == "judge" and result["grader"] == "judge"
        assert result["reason"].startswith("llm-rubric: judge")


def test_no_stored_bodies_is_a_one_line_error(eval_server: RunningServer,
                                              audit_server: AuditServer, tmp_path: Path) -> None:
    for home in (tmp_path / "fresh-home", eval_server.home):  # no database; bodies off
        res = audit_server.cli("--sample", "5", home=home)
        assert res.exit_code == 2
        assert res.stderr.startswith("devloop: error: no stored request bodies")
        assert "set `store_bodies: true` in the profile" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output


def test_bad_options_are_one_line_errors(audit_server: AuditServer) -> None:
    res = audit_server.cli("--sample", "half")
    assert res.exit_code == 2 and "--sample must be a percentage like 2% or a count" in res.stderr
    res = audit_server.cli("--feature", "no-such-feature")
    assert res.exit_code == 2 and "no stored calls served by local tiers" in res.stderr
    res = audit_server.cli("evalsets/")
    assert res.exit_code == 2 and "eval set paths cannot be used with --from-ledger" in res.stderr

    from devloop.commands.eval import eval_cmd

    res = CliRunner().invoke(eval_cmd, ["x.yaml", "--sample", "5"])
    assert res.exit_code == 2 and "--sample needs --from-ledger" in res.stderr


# -- sampling and selection (real SQLite, no model) ------------------------------------------------
def test_selection_keeps_local_recent_matching_calls(tmp_path: Path) -> None:
    db = open_db(tmp_path / "devloop.db")
    now = time.time()
    rows = [("a", now - 10, "chat-ui", "local"), ("b", now - 5, "chat-ui", "frontier"),
            ("c", now - 3, "search", "shared"), ("d", now - 9 * 86400, "chat-ui", "embedded"),
            ("e", now - 1, AUDIT_FEATURE, "embedded"), ("f", now - 2, None, "embedded")]
    for rid, ts, feature, tier in rows:
        db["call_bodies"].insert({"request_id": rid, "ts": ts, "feature": feature,
                                  "tier": tier, "model": "m", "response_text": "hi",
                                  "request_json": '{"model": "auto", "messages": []}'})
    conn = db.conn
    week = now - 7 * 86400
    ids = [c.request_id for c in load_bodies(conn, LOCAL_TIERS, week, None, AUDIT_FEATURE)]
    assert ids == ["a", "c", "f"]  # no frontier, nothing older than 7d, no audit replays
    assert [c.request_id for c in load_bodies(conn, LOCAL_TIERS, None, "chat-*",
                                              AUDIT_FEATURE)] == ["d", "a"]
    conn.close()


def test_sample_is_seeded_and_sized() -> None:
    calls = [StoredCall(f"r{i:03}", float(i), None, "local", "m", {}, "x") for i in range(200)]
    assert len(choose(calls, "2%", 0)) == 4 and len(choose(calls, "0.1%", 0)) == 1
    assert len(choose(calls, "100%", 0)) == 200 and len(choose(calls, "500", 0)) == 200
    assert choose(calls, "10", 7) == choose(calls, "10", 7) != choose(calls, "10", 8)
    picked = choose(calls, "10", 7)
    assert picked == sorted(picked, key=lambda c: c.ts)
    assert choose([], "5", 0) == []
    for bad in ("0%", "150%", "0", "2.5", "-3", "x"):
        with pytest.raises(ValueError):
            parse_sample(bad)
