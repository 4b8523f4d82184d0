"""The JSON report (the contract's keys), JUnit XML, the table and the progress output."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from devloop.evals.report import (
    CaseResult,
    Progress,
    RunResult,
    summary,
    table,
    write_json,
    write_junit,
)

DESIGN_KEYS = {"model", "prompt_hash", "pass_rate", "threshold", "passed", "failed", "cost_usd",
               "cached_cases", "cases"}
DESIGN_CASE_KEYS = {"id", "pass", "reason", "cost_usd", "cached"}


def sample_run(name: str = "commit-message") -> RunResult:
    assertions = [{"type": "contains", "pass": False, "score": 0.0, "weight": 1.0,
                   "reason": 'contains: output does not contain "fix"', "cost_usd": 0.0}]
    return RunResult(name, f"evalsets/{name}.yaml", "openai/gpt-4o-mini", "ab" * 32, 0.5, [
        CaseResult("ok", True, "1 assertion passed", 0.0012, prompt_tokens=40,
                   completion_tokens=12, latency_ms=800.0, output="fix: <done> & \x07"),
        CaseResult("bad", False, 'contains: output does not contain "fix"', 0.001,
                   assertions=assertions, output="nope"),
        CaseResult("cached", True, "1 assertion passed", 0.0, cached=True, saved_usd=0.002),
        CaseResult("boom", False, "error: 503", 0.0, error="openai/x: ServiceUnavailable"),
    ], run_id="r1", estimate_usd=0.01)


def test_json_has_the_contract_keys_and_every_case(tmp_path: Path) -> None:
    run = sample_run()
    write_json(tmp_path / "out.json", [run])
    data = json.loads((tmp_path / "out.json").read_text())
    assert set(data) >= DESIGN_KEYS
    assert [c["id"] for c in data["cases"]] == ["ok", "bad", "cached", "boom"]
    assert all(set(c) >= DESIGN_CASE_KEYS for c in data["cases"])
    # errors are counted apart from failures, as in JUnit (failures="1" errors="1")
    assert (data["passed"], data["failed"], data["errors"], data["cached_cases"]) == (2, 1, 1, 1)
    assert data["pass_rate"] == 0.5 and data["threshold"] == 0.5
    assert data["cost_usd"] == 0.0022 and data["saved_usd"] == 0.002
    assert data["status"] == "error" and data["errors"] == 1


def test_json_for_several_eval_sets_keeps_the_keys(tmp_path: Path) -> None:
    write_json(tmp_path / "out.json", [sample_run("a"), sample_run("b")])
    data = json.loads((tmp_path / "out.json").read_text())
    assert set(data) >= DESIGN_KEYS and len(data["cases"]) == 8
    assert [e["evalset"] for e in data["evalsets"]] == ["a", "b"]
    assert {c["evalset"] for c in data["cases"]} == {"a", "b"}


def test_unknown_cost_is_null_not_zero() -> None:
    run = RunResult("s", None, "m", "h", 1.0, [CaseResult("x", True, "ok", None)])
    assert run.as_json()["cost_usd"] is None and "unknown" in summary(run)


def test_junit_is_valid_xml(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml", [sample_run("a"), sample_run("b")])
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("8", "2", "2")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["a", "b"]
    cases = suites[0].findall("testcase")
    assert [c.get("name") for c in cases] == ["ok", "bad", "cached", "boom"]
    assert cases[0].find("failure") is None and cases[0].find("error") is None
    assert "does not contain" in cases[1].find("failure").get("message")
    assert cases[3].find("error") is not None
    assert cases[0].find("system-out").text.startswith("fix: <done> &")
    props = {p.get("name"): p.get("value") for p in suites[0].iter("property")}
    assert props["model"] == "openai/gpt-4o-mini" and props["status"] == "error"


def test_table_and_summary() -> None:
    run = sample_run()
    text = table(run, width=100)
    assert text.splitlines()[0].split()[:3] == ["case", "result", "reason"]
    assert "PASS" in text and "FAIL" in text and "ERROR" in text and "cached" in text
    assert all(len(line) <= 100 for line in text.splitlines())
    line = summary(run)
    assert "2/4 passed" in line and "1 of 4 cases from cache (saved $0.0020)" in line


def test_progress_is_plain_when_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(2, "smoke", stream=stream)
    progress.advance("a", "PASS", 0.001)
    progress.advance("b", "FAIL")
    assert stream.getvalue() == "smoke: 1/2 a PASS\nsmoke: 2/2 b FAIL\n"

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = Progress(2, "smoke", stream=tty)
    bar.advance("a", "PASS", 0.5)
    assert tty.getvalue().startswith("\rsmoke [############............] 1/2 $0.5000")
