"""Stage 1, draft: the cases on the local tier (no spend), what they would have cost on the
production model, and every stage result stored against the prompt hash."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from devloop.config import Settings, load_profile
from devloop.evals.evalset import load_evalset
from devloop.pipeline.checker import Checker
from devloop.pipeline.draft import DraftResult
from devloop.pricing import Pricing
from devloop.store.checks import latest_checks
from tests.pipeline.conftest import write

SONNET = "anthropic/claude-sonnet-4-5"
SMALL = f"""
name: tiny-draft
production_model: {SONNET}
threshold: 0.5
max_tokens: 8
prompt:
  system: You answer in one short sentence.
  messages:
    - {{role: user, content: "Name a colour like {{{{colour}}}}."}}
cases:
  - id: passes
    vars: {{colour: red}}
    assert:
      - {{type: not-contains, value: "zz-never-said-zz"}}
  - id: fails
    vars: {{colour: blue}}
    assert:
      - {{type: contains, value: "zz-never-said-zz"}}
"""


@pytest.mark.slow
async def test_draft_runs_on_the_local_tier_and_records_the_would_have_cost(
        tmp_path: Path, embedded_profile: Path) -> None:
    path = write(tmp_path / "tiny.yaml", SMALL)
    settings = Settings(home=tmp_path / "home")
    profile = load_profile(embedded_profile)
    checker = Checker(settings, profile)
    await checker.start()
    try:
        report = await checker.check_file(path, stages=("draft", "cache_order"))
    finally:
        await checker.close()

    draft = report.stages["draft"]
    assert isinstance(draft, DraftResult)
    assert draft.errors == 0 and draft.pass_rate == 0.5 and draft.status == "pass"
    assert [c.passed for c in draft.cases] == [True, False]
    assert "zz-never-said-zz" in draft.cases[1].reason
    # Forced to the local tier; with no Ollama running, its fallback (embedded) answered.
    assert {c.tier for c in draft.cases} == {"embedded"}
    assert draft.models == ["smollm2-135m"]

    pricing = Pricing(profile)
    expected = sum(pricing.cost(SONNET, c.prompt_tokens, c.completion_tokens) or 0.0
                   for c in draft.cases)
    assert draft.would_cost_usd == pytest.approx(expected) and expected > 0
    assert 0 < draft.mean_completion_tokens <= 8

    # The calls are in the ledger, attributed to the check, free, booked as devloop's own
    # traffic: never "saved" (the stage's would-cost above is where that figure lives).
    conn = sqlite3.connect(settings.db_path)
    rows = conn.execute("SELECT tier, route_reason, cost_usd, counterfactual_usd, saved_usd, "
                        "origin FROM calls WHERE feature = 'check:tiny-draft'").fetchall()
    assert len(rows) == 2
    assert all(tier == "embedded" and cost == 0 and cf == 0 and saved == 0 and origin == "check"
               for tier, _, cost, cf, saved, origin in rows)
    assert all("local" in reason for _, reason, *_ in rows)

    # Each stage's result is stored against the prompt's content hash.
    es = load_evalset(path)
    stored = {r["stage"]: r for r in latest_checks(settings.db_path, prompt_hash=es.prompt_hash)}
    assert set(stored) == {"draft", "cache_order"}
    assert stored["draft"]["file"] == report.file and stored["draft"]["status"] == "pass"
    assert json.loads(stored["draft"]["result_json"])["would_cost_usd"] == draft.would_cost_usd
    cache = json.loads(stored["cache_order"]["result_json"])
    assert cache["assumed_output_tokens"] == draft.mean_completion_tokens


async def test_a_tier_that_cannot_answer_is_an_error_not_a_crash(tmp_path: Path) -> None:
    profile_path = write(tmp_path / "dead.yaml", """
        name: dead
        production_model: anthropic/claude-sonnet-4-5
        tiers:
          local: {backend: ollama, model: qwen2.5-coder:1.5b, base_url: "http://127.0.0.1:9"}
        routes: [{tier: local}]
    """)
    checker = Checker(Settings(home=tmp_path / "home"), load_profile(profile_path))
    await checker.start()
    try:
        report = await checker.check_file(write(tmp_path / "tiny.yaml", SMALL),
                                          stages=("draft", "cache_order"))
    finally:
        await checker.close()
    draft = report.stages["draft"]
    assert draft.status == "error" and draft.pass_rate is None and draft.errors == 2
    assert "127.0.0.1:9" in (draft.cases[0].error or "")
    assert report.stages["cache_order"].status == "pass"  # the other stages still ran
    assert report.worst_status() == "error"
