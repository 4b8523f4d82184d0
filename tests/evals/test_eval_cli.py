"""`devloop eval` end to end: the production model is a real devloop server (embedded SmolLM2)
reached through litellm as openai/embedded. SmolLM2's words are not predictable, so the eval
sets use checks a 135M model always passes (not-contains an impossible string) or always
fails (equals a long random string)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from tests.evals.conftest import EvalCli, ledger_rows
from tests.helpers import free_port, start_server, write_profile

IMPOSSIBLE = "zq9x-7kw-never-said-4f1c"


def evalset(path: Path, name: str, cases: str, prompt: str = "Say hello to {{name}}.",
            threshold: float = 1.0) -> Path:
    path.write_text(f"""
name: {name}
threshold: {threshold}
temperature: 0
max_tokens: 12
prompt:
  system: You are a terse assistant.
  messages:
    - {{role: user, content: "{prompt}"}}
cases:
{cases}
""")
    return path


PASSING = f"""
  - id: alice
    vars: {{name: Alice}}
    assert:
      - {{type: not-contains, value: "{IMPOSSIBLE}"}}
      - {{type: latency, threshold: 600000}}
  - id: bob
    vars: {{name: Bob}}
    assert:
      - {{type: not-equals, value: "{IMPOSSIBLE}"}}
      - {{type: cost, threshold: 1.0}}
"""
FAILING = f"""
  - id: carol
    vars: {{name: Carol}}
    assert:
      - {{type: equals, value: "{IMPOSSIBLE}-{IMPOSSIBLE}"}}
  - id: dave
    vars: {{name: Dave}}
    assert:
      - {{type: not-contains, value: "{IMPOSSIBLE}"}}
"""


def test_exit_0_with_json_and_junit_reports(eval_cli: EvalCli, tmp_path: Path) -> None:
    path = evalset(tmp_path / "greet.yaml", "greet", PASSING)
    res = eval_cli(str(path), "--json", str(tmp_path / "r.json"), "--junit",
                   str(tmp_path / "r.xml"))
    assert res.exit_code == 0, res.output
    assert "greet on openai/embedded: 2/2 passed" in res.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert {"model", "prompt_hash", "pass_rate", "threshold", "passed", "failed", "cost_usd",
            "cached_cases", "cases"} <= set(data)
    assert [c["id"] for c in data["cases"]] == ["alice", "bob"]
    assert all(c["pass"] and not c["cached"] and c["cost_usd"] > 0 for c in data["cases"])
    assert data["model"] == "openai/embedded" and data["pass_rate"] == 1.0
    assert data["cost_usd"] > 0 and data["estimate_usd"] >= data["cost_usd"]
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "0"
    assert [c.get("name") for c in suite.iter("testcase")] == ["alice", "bob"]


def test_exit_1_below_threshold(eval_cli: EvalCli, tmp_path: Path) -> None:
    path = evalset(tmp_path / "strict.yaml", "strict", FAILING, threshold=0.75)
    res = eval_cli(str(path), "--json", str(tmp_path / "r.json"), "--junit",
                   str(tmp_path / "r.xml"))
    assert res.exit_code == 1, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    cases = {c["id"]: c for c in data["cases"]}
    assert not cases["carol"]["pass"] and cases["dave"]["pass"]
    assert "does not equal" in cases["carol"]["reason"]
    assert (data["passed"], data["failed"], data["pass_rate"]) == (1, 1, 0.5)
    failure = ET.parse(tmp_path / "r.xml").getroot().find("testsuite/testcase/failure")
    assert failure is not None
    # --threshold lowers the bar for this run
    assert eval_cli(str(path), "--threshold", "0.5").exit_code == 0


def test_exit_2_on_errors(eval_cli: EvalCli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nprompt: {system: hi}\ncases:\n  - assert: [{type: nope}]\n")
    res = eval_cli(str(bad))
    assert res.exit_code == 2
    assert res.stderr.startswith(f"devloop: error: {bad}: cases.0.assert.0.type")
    assert "Traceback" not in res.output
    assert eval_cli(str(tmp_path / "missing.yaml")).exit_code == 2
    # a model endpoint that does not answer: retried, then an error case and exit 2
    path = evalset(tmp_path / "net.yaml", "net", PASSING)
    dead = f"http://127.0.0.1:{free_port()}/v1"
    res = eval_cli(str(path), "--retries", "1", "--json", str(tmp_path / "r.json"),
                   api_base=dead)
    assert res.exit_code == 2, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["status"] == "error" and all(c["error"] for c in data["cases"])


def test_second_run_is_free_and_a_prompt_change_reruns(eval_cli: EvalCli,
                                                        tmp_path: Path) -> None:
    path = evalset(tmp_path / "cache.yaml", "cache", PASSING)
    assert eval_cli(str(path)).exit_code == 0
    before = ledger_rows(eval_cli.server)
    res = eval_cli(str(path), "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["cost_usd"] == 0 and data["cached_cases"] == 2 and data["saved_usd"] > 0
    assert all(c["cached"] for c in data["cases"])
    assert "all 2 cases from cache; nothing to spend" in res.stderr
    assert "2 of 2 cases from cache (saved $" in res.stdout
    assert ledger_rows(eval_cli.server) == before  # nothing reached the model
    evalset(path, "cache", PASSING, prompt="Say goodbye to {{name}}.")
    res = eval_cli(str(path), "--json", str(tmp_path / "r2.json"))
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "r2.json").read_text())
    assert data["cached_cases"] == 0 and data["cost_usd"] > 0
    assert ledger_rows(eval_cli.server) == before + 2


def test_max_cost_below_the_estimate_calls_nothing(eval_cli: EvalCli, tmp_path: Path) -> None:
    path = evalset(tmp_path / "budget.yaml", "budget", PASSING)
    before = ledger_rows(eval_cli.server)
    res = eval_cli(str(path), "--max-cost", "0.00000001")
    assert res.exit_code == 2
    assert "--max-cost: worst-case cost" in res.stderr and "nothing was called" in res.stderr
    assert ledger_rows(eval_cli.server) == before
    # an unpriced model cannot be bounded, so --max-cost refuses it too
    res = eval_cli(str(path), "--max-cost", "100", "--model", "openai/unpriced-model")
    assert res.exit_code == 2 and "no price for openai/unpriced-model" in res.stderr
    assert ledger_rows(eval_cli.server) == before
    # a budget above the estimate runs
    assert eval_cli(str(path), "--max-cost", "1").exit_code == 0
    assert ledger_rows(eval_cli.server) == before + 2


def test_batch_end_to_end_through_devloops_batch_api(eval_cli: EvalCli, tmp_path: Path) -> None:
    path = evalset(tmp_path / "batch.yaml", "batch-eval", PASSING + FAILING, threshold=0.5)
    before = ledger_rows(eval_cli.server)
    res = eval_cli(str(path), "--batch", "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 2, res.output  # alice's latency check cannot be decided
    assert "batch batch_" in res.stderr and "submitted (4 requests)" in res.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["batch"] is True and data["passed"] == 2
    cases = {c["id"]: c for c in data["cases"]}
    assert {k: c["pass"] for k, c in cases.items()} == {
        "alice": False, "bob": True, "carol": False, "dave": True}
    # a batch result has no per-request latency: a latency check is an error, never a pass
    assert "latency unknown" in cases["alice"]["error"]
    assert all(c["output"] and c["completion_tokens"] > 0 for c in data["cases"])
    assert ledger_rows(eval_cli.server) == before + 4
    batches = httpx.get(eval_cli.server.base_url + "/v1/batches").json()["data"]
    mine = [b for b in batches if (b.get("metadata") or {}).get("devloop_evalset") == "batch-eval"]
    assert mine and mine[0]["status"] == "completed"
    assert mine[0]["request_counts"] == {"total": 4, "completed": 4, "failed": 0}


def test_batch_needs_a_provider_with_a_batch_api(eval_cli: EvalCli, tmp_path: Path) -> None:
    path = evalset(tmp_path / "b.yaml", "b", PASSING)
    res = eval_cli(str(path), "--batch", "--model", "ollama/llama3")
    assert res.exit_code == 2 and "no Batch API for ollama/llama3 (provider 'ollama')" in res.stderr


def test_gate_fails_until_the_prompt_passes(eval_cli: EvalCli, tmp_path: Path) -> None:
    path = evalset(tmp_path / "gated.yaml", "gated", PASSING)
    res = eval_cli(str(path), "--gate")
    assert res.exit_code == 1
    assert "no passing eval of this eval set on openai/embedded" in res.stdout
    assert ledger_rows(eval_cli.server) >= 0
    failing = evalset(tmp_path / "gated-fail.yaml", "gated-fail", FAILING)
    assert eval_cli(str(failing)).exit_code == 1
    assert eval_cli(str(failing), "--gate").exit_code == 1  # a failing run promotes nothing
    assert eval_cli(str(path)).exit_code == 0
    res = eval_cli(str(path), "--gate")
    assert res.exit_code == 0 and "passed on openai/embedded (database)" in res.stdout
    # CI has no developer database: the committed promotion file is enough
    ci = EvalCli(tmp_path / "ci-home", eval_cli.profile, eval_cli.server)
    res = ci(str(path), "--gate")
    assert res.exit_code == 0 and "(promotion file)" in res.stdout
    promotions = json.loads((tmp_path / "devloop.promotions.json").read_text())["promotions"]
    assert [p["evalset"] for p in promotions] == ["gated"]
    # editing the prompt makes a new hash, which is not promoted
    evalset(path, "gated", PASSING, prompt="Wave at {{name}}.")
    assert ci(str(path), "--gate").exit_code == 1


def test_model_graded_assertions_call_the_server(eval_cli: EvalCli, tmp_path: Path) -> None:
    cases = f"""
  - id: graded
    vars: {{name: Ada}}
    assert:
      - {{type: not-contains, value: "{IMPOSSIBLE}"}}
      - {{type: similar, value: "Hello Ada", threshold: -1}}
  - id: never-similar
    vars: {{name: Ada}}
    assert:
      - {{type: similar, value: ["Hello Ada", "Hi"], threshold: 1.5}}
"""
    path = evalset(tmp_path / "graded.yaml", "graded", cases, threshold=0.5)
    res = eval_cli(str(path), "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    graded, never = data["cases"]
    assert graded["pass"] and not never["pass"]
    kinds = {a["type"]: a for a in graded["assertions"]}
    assert kinds["similar"]["pass"] and -1 <= kinds["similar"]["score"] <= 1
    # llm-rubric needs a judge that answers with a verdict: tests/evals/test_gate.py
    assert "cosine similarity" in never["reason"]


def test_promptfoo_config_runs(eval_cli: EvalCli, tmp_path: Path) -> None:
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text(f"""
prompts: ["Name one colour. Reply with {{{{style}}}} words."]
providers: [openai:chat:embedded]
defaultTest:
  assert: [{{type: not-contains, value: "{IMPOSSIBLE}"}}]
tests:
  - vars: {{style: few}}
  - vars: {{style: three}}
    assert: [{{type: starts-with, value: "{IMPOSSIBLE}"}}]
""")
    res = eval_cli(str(config), "--threshold", "0.5", "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["model"] == "openai/embedded"
    assert [c["pass"] for c in data["cases"]] == [True, False]


@pytest.mark.slow
def test_429s_are_retried_with_backoff(tmp_path: Path, client_profile: Path) -> None:
    """A server that takes one request at a time answers the others 429 (Retry-After: 1)."""
    profile = write_profile(tmp_path / "one-at-a-time.yaml", """
name: one-at-a-time
production_model: anthropic/claude-sonnet-4-5
tiers:
  embedded: {backend: embedded, model: smollm2-135m}
routes: [{tier: embedded}]
cache: {enabled: false}
rate_limits: [{scope: global, max_concurrent: 1}]
""")
    server = start_server(profile, tmp_path / "server-home")
    try:
        cli = EvalCli(tmp_path / "home", client_profile, server)
        cases = "".join(f"""
  - id: c{i}
    vars: {{name: P{i}}}
    assert: [{{type: not-contains, value: "{IMPOSSIBLE}"}}]""" for i in range(4))
        path = evalset(tmp_path / "busy.yaml", "busy", cases)
        res = cli(str(path), "--concurrency", "4", "--retries", "8", "--json",
                  str(tmp_path / "r.json"))
        assert res.exit_code == 0, res.output
        data = json.loads((tmp_path / "r.json").read_text())
        assert data["passed"] == 4 and data["retries"] > 0
    finally:
        server.stop()
