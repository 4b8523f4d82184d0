"""Issue 17, points 1, 2, 3, 6 and 7: a gate that cannot be satisfied without passing, graders
that fail closed, cases that must test something, truthful reports. The model is the scripted
loopback server (tests/evals/recording_model.py), so outputs and judge verdicts are exact."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.evals.gate_helpers import Eval, evalset, recording_model, report, run_eval

__all__ = ["recording_model", "run_eval"]  # fixtures

PASS_CASE = """
  - id: ok
    vars: {q: "SAY<<fine>>"}
    assert: [{type: equals, value: fine}]
"""
FAIL_CASE = """
  - id: bad
    vars: {q: "SAY<<wrong>>"}
    assert: [{type: equals, value: right}]
"""
NEW_CASE = """
  - id: never-run
    vars: {q: "SAY<<new>>"}
    assert: [{type: equals, value: other}]
"""


def promotions(folder: Path) -> list[dict]:
    path = folder / "devloop.promotions.json"
    return json.loads(path.read_text())["promotions"] if path.exists() else []


# -- 1. the gate ---------------------------------------------------------------------------
def test_lower_threshold_reports_but_never_promotes_and_gate_fails_in_fresh_home(
        run_eval: Eval, tmp_path: Path) -> None:
    es = evalset(tmp_path / "strict.yaml", PASS_CASE + FAIL_CASE, threshold=1.0)
    res = run_eval(tmp_path / "home-dev", str(es), "--threshold", "0")
    assert res.exit_code == 0, res.output  # --threshold is a report option...
    assert "not promoted: --threshold 0 is below the eval set's threshold 1" in res.output
    assert "promoted for" not in res.output
    assert promotions(es.parent) == []  # ...that never promotes
    gate = run_eval(tmp_path / "home-ci", str(es), "--gate", api_base=False)
    assert gate.exit_code == 1, gate.output
    assert "no passing eval of this eval set on openai/recorded" in gate.output


def test_gate_in_second_home_requires_exactly_the_promoted_content(
        run_eval: Eval, tmp_path: Path) -> None:
    (tmp_path / "sets").mkdir()
    es = evalset(tmp_path / "sets" / "greet.yaml", PASS_CASE)
    res = run_eval(tmp_path / "home-dev", str(es))
    assert res.exit_code == 0, res.output
    assert "promoted for openai/recorded" in res.output
    [entry] = promotions(es.parent)
    assert entry["model"] == "openai/recorded" and entry["threshold"] == 1.0
    assert set(entry["cases"]) == {"ok"} and len(entry["content_hash"]) == 64
    calls = len(run_eval.model.seen)
    gate = run_eval(tmp_path / "home-ci", str(es), "--gate", api_base=False)
    assert gate.exit_code == 0, gate.output
    assert "passed on openai/recorded (promotion file)" in gate.output
    assert len(run_eval.model.seen) == calls  # the gate calls nothing

    # the same prompt with a new, never-run case: not promoted, and the case is named
    evalset(es, PASS_CASE + NEW_CASE)
    gate = run_eval(tmp_path / "home-ci", str(es), "--gate", api_base=False)
    assert gate.exit_code == 1
    assert "case(s) never run in the promoted eval: 'never-run'" in gate.output

    # a changed threshold is named too (0.5 in the file, 1.0 recorded)
    evalset(es, PASS_CASE, threshold=0.5)
    gate = run_eval(tmp_path / "home-ci", str(es), "--gate", api_base=False)
    assert gate.exit_code == 1
    assert "the threshold is 0.5 in the file, 1.0 in the record" in gate.output

    # a hand-edited record (pass rate lowered to 0) with the right hash does not pass either
    evalset(es, PASS_CASE)
    path = es.parent / "devloop.promotions.json"
    body = json.loads(path.read_text())
    body["promotions"][0]["pass_rate"] = 0.0
    path.write_text(json.dumps(body))
    gate = run_eval(tmp_path / "home-ci", str(es), "--gate", api_base=False)
    assert gate.exit_code == 1
    assert "the recorded pass rate 0.0 is below the file's threshold 1" in gate.output


def test_promotion_says_which_model_and_gate_names_the_other(run_eval: Eval,
                                                              tmp_path: Path) -> None:
    es = evalset(tmp_path / "m.yaml", PASS_CASE)
    res = run_eval(tmp_path / "home", str(es), "--model", "openai/other-model")
    assert res.exit_code == 0 and "promoted for openai/other-model" in res.output
    gate = run_eval(tmp_path / "ci", str(es), "--gate", api_base=False)
    assert gate.exit_code == 1
    assert "the promotion is for model openai/other-model, the gate checks openai/recorded" \
        in gate.output
    ok = run_eval(tmp_path / "ci", str(es), "--gate", "--model", "openai/other-model",
                  api_base=False)
    assert ok.exit_code == 0, ok.output


# -- 2. graders fail closed ------------------------------------------------------------------
def test_judge_verdict_is_the_last_object_with_pass_and_no_verdict_is_an_error(
        run_eval: Eval, tmp_path: Path) -> None:
    es = evalset(tmp_path / "judge.yaml", """
  - id: quoted
    vars: {q: "SAY<<the total is 3>>"}
    assert: [{type: llm-rubric, value: "[judge:quote-fail] the total is right"}]
""")
    res = run_eval(tmp_path / "home", str(es), "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 1, res.output
    case = report(tmp_path / "r.json")["cases"][0]
    assert case["pass"] is False and case["score"] == 0
    assert "the total is wrong" in case["reason"]
    assert case["assertions"][0]["cost_usd"] > 0  # the judge call was priced and counted

    evalset(es, """
  - id: silent
    vars: {q: "SAY<<the total is 3>>"}
    assert: [{type: llm-rubric, value: "[judge:none] the total is right"}]
""")
    res = run_eval(tmp_path / "home", str(es), "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 2, res.output
    data = report(tmp_path / "r.json")
    assert data["errors"] == 1 and data["cases"][0]["pass"] is False
    assert "the judge gave no verdict" in data["cases"][0]["error"]
    assert not (tmp_path / "devloop.promotions.json").exists()


# -- 3. cases that test nothing ---------------------------------------------------------------
def test_cases_without_effective_assertions_are_errors_and_unused_vars_warn(
        run_eval: Eval, tmp_path: Path) -> None:
    es = evalset(tmp_path / "empty.yaml", """
  - id: misindented
    vars:
      q: "SAY<<x>>"
      assert: [{type: equals, value: x}]
  - id: weightless
    vars: {q: "SAY<<x>>", extra: unused}
    assert: [{type: equals, value: x, weight: 0}]
""")
    res = run_eval(tmp_path / "home", str(es), "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 2, res.output
    errors = {c["id"]: c["error"] for c in report(tmp_path / "r.json")["cases"]}
    assert "its `assert:` is indented under `vars:`" in errors["misindented"]
    assert "all have weight 0" in errors["weightless"]
    assert "case 'weightless': var 'extra' is not used by the prompt" in res.output
    assert run_eval.model.chat_requests() == []  # nothing was called for them

    evalset(es, """
  - id: smoke
    vars: {q: "SAY<<x>>"}
""", extra="allow_empty: true")
    res = run_eval(tmp_path / "home", str(es))
    assert res.exit_code == 0, res.output


# -- 6 and 7. truthful reports, credentials ----------------------------------------------------
def test_truncated_output_is_flagged_and_errors_are_counted_apart(run_eval: Eval,
                                                                  tmp_path: Path) -> None:
    es = evalset(tmp_path / "t.yaml", PASS_CASE + """
  - id: cut
    vars: {q: "[long] tell me everything"}
    assert: [{type: icontains, value: answer}]
  - id: judged
    vars: {q: "SAY<<x>>"}
    assert: [{type: llm-rubric, value: "[judge:none] anything"}]
  - id: failing
    vars: {q: "SAY<<x>>"}
    assert: [{type: equals, value: y}]
""")
    res = run_eval(tmp_path / "home", str(es), "--json", str(tmp_path / "r.json"), "--junit",
                   str(tmp_path / "r.xml"))
    assert res.exit_code == 2
    assert "[TRUNCATED: finish_reason length]" in res.output
    data = report(tmp_path / "r.json")
    cut = next(c for c in data["cases"] if c["id"] == "cut")
    assert cut["truncated"] is True and cut["finish_reason"] == "length"
    assert (data["passed"], data["failed"], data["errors"]) == (2, 1, 1)
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "1")
    case = next(tc for tc in suite.iter("testcase") if tc.get("name") == "cut")
    err = case.find("system-err")
    assert err is not None and "TRUNCATED" in (err.text or "")


def test_cached_latency_is_marked_and_keeps_its_time(run_eval: Eval, tmp_path: Path) -> None:
    es = evalset(tmp_path / "lat.yaml", """
  - id: fast
    vars: {q: "SAY<<x>>"}
    assert: [{type: latency, threshold: 600000}]
""")
    assert run_eval(tmp_path / "home", str(es)).exit_code == 0
    res = run_eval(tmp_path / "home", str(es), "--json", str(tmp_path / "r.json"), "--junit",
                   str(tmp_path / "r.xml"))
    assert res.exit_code == 0
    case = report(tmp_path / "r.json")["cases"][0]
    assert case["cached"] is True
    assert case["assertions"][0]["cached"] is True
    assert "cached: measured on an earlier run" in case["assertions"][0]["reason"]
    tc = next(ET.parse(tmp_path / "r.xml").getroot().iter("testcase"))
    assert float(tc.get("time") or 0) > 0  # the measured time, not 0.000
    assert "cached result" in (tc.find("system-err").text or "")  # type: ignore[union-attr]


def test_cost_without_a_price_is_an_error_and_max_cost_names_the_judge(
        run_eval: Eval, tmp_path: Path) -> None:
    es = evalset(tmp_path / "cost.yaml", """
  - id: priced-by-nobody
    vars: {q: "SAY<<x>>"}
    assert: [{type: cost, threshold: 1.0}]
""")
    res = run_eval(tmp_path / "home", str(es), "--model", "openai/unpriced-model",
                   "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 2
    assert "cost is unknown" in report(tmp_path / "r.json")["cases"][0]["error"]

    run_eval.model.seen.clear()
    evalset(es, """
  - id: judged
    vars: {q: "SAY<<x>>"}
    assert: [{type: llm-rubric, value: "[judge:pass] ok"}]
""")
    res = run_eval(tmp_path / "home", str(es), "--judge-model", "openai/unpriced-judge",
                   "--max-cost", "1")
    assert res.exit_code == 2
    assert "no price for openai/unpriced-judge" in res.output
    assert "openai/recorded" not in res.output.split("no price for")[1]
    assert run_eval.model.chat_requests() == []


def test_missing_key_is_found_before_any_call(run_eval: Eval, tmp_path: Path) -> None:
    es = evalset(tmp_path / "key.yaml", PASS_CASE)
    res = run_eval(tmp_path / "home", str(es), "--model", "anthropic/claude-sonnet-4-5",
                   api_base=False, env={"ANTHROPIC_API_KEY": None})  # type: ignore[dict-item]
    assert res.exit_code == 2
    assert "no API key for anthropic/claude-sonnet-4-5: set ANTHROPIC_API_KEY" in res.output
    assert "Traceback" not in res.output


def test_authentication_errors_are_not_retried(recording_model, tmp_path: Path,  # type: ignore[no-untyped-def]
                                               run_eval: Eval) -> None:
    recording_model.require_key = "sk-right"
    try:
        es = evalset(tmp_path / "auth.yaml", PASS_CASE)
        res = run_eval(tmp_path / "home", str(es), "--retries", "4",
                       env={"OPENAI_API_KEY": "sk-wrong"})
    finally:
        recording_model.require_key = None
    assert res.exit_code == 2
    assert len(recording_model.chat_requests()) == 1  # asked once, never retried


def test_bare_eval_defaults_to_evalsets_folder(run_eval: Eval, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "evalsets").mkdir(parents=True)
    evalset(project / "evalsets" / "one.yaml", PASS_CASE)
    import os

    old = os.getcwd()
    os.chdir(project)
    try:
        res = run_eval(tmp_path / "home")
    finally:
        os.chdir(old)
    assert res.exit_code == 0, res.output
    assert "one on openai/recorded: 1/1 passed" in res.output
