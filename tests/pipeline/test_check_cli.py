"""`devloop check` end to end, in a subprocess: the --json contract, the stored results and
the reordered prompt on request."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from devloop.evals.evalset import load_evalset
from tests.pipeline.conftest import (
    block,
    cli_env,
    copy_shipped,
    devloop_cmd,
    style_guide,
    write,
)

DESIGN_KEYS = {
    "draft": {"status", "pass_rate", "would_cost_usd"},
    "compression": {"status", "origin_tokens", "compressed_tokens", "saved_usd_per_1k_calls",
                    "recommendation", "reasons"},
    "cache_order": {"status", "cacheable_prefix_tokens", "min_cacheable_tokens",
                    "dynamic_before_static", "reordered_prefix_tokens", "cost_per_1k_calls_usd",
                    "reordered_cost_per_1k_calls_usd"},
}
STATUSES = {"pass", "warn", "fail", "error", "skipped"}


def run(args: list[str], home: Path, cwd: Path, timeout: float = 600
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(devloop_cmd(*args), env=cli_env(home), capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


@pytest.mark.slow
def test_check_json_runs_the_three_stages_and_stores_them(
        tmp_path: Path, home_with_model: Path, embedded_profile: Path) -> None:
    context = style_guide().split("## 3.")[0]  # prose, ~400 tokens: below the cache minimum
    path = write(tmp_path / "evalsets" / "guide-qa.yaml",
                 "name: guide-qa\nthreshold: 0.5\nmax_tokens: 8\nprompt:\n  system: |\n"
                 f"{block(context, 4)}\n  messages:\n"
                 "    - {role: user, content: \"Question: {{question}}\"}\n"
                 "cases:\n"
                 "  - {id: a, vars: {question: \"Who labels nits?\"},\n"
                 "     assert: [{type: not-contains, value: zz-never-zz}]}\n"
                 "  - {id: b, vars: {question: \"Who may ignore a nit?\"},\n"
                 "     assert: [{type: not-contains, value: zz-never-zz}]}\n")
    proc = run(["check", "--json", "--profile", str(embedded_profile), str(path)],
               home_with_model, tmp_path)
    assert proc.returncode == 0, proc.stderr
    [report] = json.loads(proc.stdout)
    es = load_evalset(path)
    assert report["file"] == "evalsets/guide-qa.yaml"
    assert report["prompt_hash"] == es.prompt_hash
    assert set(report["stages"]) == set(DESIGN_KEYS)
    for stage, keys in DESIGN_KEYS.items():
        assert keys <= set(report["stages"][stage]), stage
        assert report["stages"][stage]["status"] in STATUSES

    draft, comp, cache = (report["stages"][s] for s in ("draft", "compression", "cache_order"))
    assert draft["status"] == "pass" and draft["pass_rate"] == 1.0
    assert draft["would_cost_usd"] > 0
    # Instruction text: measured (always), shown next to caching, never recommended.
    assert comp["recommendation"] == "skip" and comp["reasons"]
    assert "instruction text" in comp["reasons"][0]
    assert 0 < comp["compressed_tokens"] < comp["origin_tokens"]
    assert comp["saved_usd_per_1k_calls"] == 0  # nothing it may touch
    assert comp["parts"][0]["saved_usd_per_1k_calls"] > 0  # what it would have saved
    assert comp["compressed_pass_rate"] is None  # no candidate: the draft did not rerun
    assert cache["status"] == "pass" and cache["dynamic_before_static"] == []
    assert cache["min_cacheable_tokens"] == 1024
    # ~400 static tokens, below Anthropic's 1,024 minimum: nothing is cached (issue 19), and
    # the note says why
    assert cache["cacheable_prefix_tokens"] == 0
    assert any("below the provider minimum 1,024" in n for n in cache["notes"]), cache["notes"]

    conn = sqlite3.connect(home_with_model / "devloop.db")
    rows = conn.execute("SELECT stage, status, prompt_hash FROM prompt_checks").fetchall()
    assert {(stage, h) for stage, _, h in rows} == {(s, es.prompt_hash) for s in DESIGN_KEYS}
    # The draft's calls are in the ledger at no cost; the compression is cached by hash.
    spent = conn.execute("SELECT COUNT(*), SUM(cost_usd) FROM calls "
                         "WHERE feature LIKE 'check:guide-qa%'").fetchone()
    assert spent == (2, 0.0)
    assert conn.execute("SELECT COUNT(*) FROM ladder_compressions").fetchone()[0] >= 1


def test_show_reordered_prints_the_suggested_prompt(tmp_path: Path) -> None:
    copy_shipped("code-review-summary.yaml", tmp_path / "evalsets")
    proc = run(["check", "--stage", "cache_order", "--show-reordered", "--no-store"],
               tmp_path / "home", tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "evalsets/code-review-summary.yaml" in out
    assert "! date {{review_date}} (per_day) at token" in out
    assert "! user {{reviewer}} (per_call) at token" in out
    assert "counts input and output: 200 output tokens assumed per call (the eval set's max_tokens)" in out
    assert "variables: review_date per_day (inferred), reviewer per_call (inferred)" in out
    assert "suggested prompt:" in out and "as a diff:" in out
    suggested = out.split("suggested prompt:", 1)[1].split("as a diff:")[0]
    assert suggested.index("# Payments Platform code-review style guide") < \
        suggested.index("Review date: {{review_date}}")
    diff = out.split("as a diff:", 1)[1]
    assert "-    Review date: {{review_date}}" in diff and "+    Review date: {{review_date}}" in diff


def test_check_json_for_a_folder_lists_every_file(tmp_path: Path) -> None:
    folder = tmp_path / "evalsets"
    for name in ("commit-message.yaml", "json-extractor.yaml"):
        copy_shipped(name, folder)
    proc = run(["check", "--json", "--stage", "cache_order", str(folder)], tmp_path / "home",
               tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    reports = json.loads(proc.stdout)
    assert [r["file"] for r in reports] == ["evalsets/commit-message.yaml",
                                            "evalsets/json-extractor.yaml"]
    for r in reports:
        assert r["stages"]["draft"] == {"status": "skipped", "pass_rate": None,
                                        "would_cost_usd": None}
        assert r["stages"]["cache_order"]["status"] == "pass"


@pytest.mark.slow
def test_check_with_the_bundled_team_profile_drafts_on_its_cheapest_tier(
        tmp_path: Path, home_with_model: Path) -> None:
    """The team profile has no `local` tier: the draft runs on its cheapest non-frontier tier
    (embedded: free; shared is priced) and says so."""
    path = write(tmp_path / "evalsets" / "team.yaml",
                 "name: team\nthreshold: 0.5\nmax_tokens: 4\nprompt:\n  messages:\n"
                 "    - {role: user, content: \"Say {{word}}.\"}\n"
                 "cases:\n  - {id: a, vars: {word: hi},\n"
                 "     assert: [{type: not-contains, value: zz-never-zz}]}\n")
    proc = run(["check", "--json", "--stage", "draft", "--profile", "team", str(path)],
               home_with_model, tmp_path)
    assert proc.returncode == 0, proc.stderr
    [report] = json.loads(proc.stdout)
    draft = report["stages"]["draft"]
    assert draft["status"] in ("pass", "warn") and draft["tier"] == "embedded"
    text = run(["check", "--stage", "draft", "--profile", "team", str(path)],
               home_with_model, tmp_path)
    assert " on embedded " in text.stdout, text.stdout
