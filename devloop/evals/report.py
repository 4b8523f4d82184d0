"""Eval results and how they are shown: the terminal table, ``--json``, ``--junit``, progress.

``--json FILE`` keeps the keys in DESIGN.md ("devloop eval --json FILE") and adds more; with
several eval sets the top level sums them and ``evalsets`` holds one object per set.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from devloop.money import format_usd, round_usd, sum_usd


@dataclass(slots=True)
class CaseResult:
    id: str
    passed: bool
    reason: str
    cost_usd: float | None = 0.0
    cached: bool = False
    score: float = 0.0
    output: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float | None = None
    error: str | None = None
    assertions: list[dict[str, Any]] = field(default_factory=list)
    saved_usd: float | None = None  # what the cached result cost when it was first run
    description: str | None = None
    finish_reason: str | None = None
    messages: list[dict[str, Any]] | None = None  # the rendered prompt that was sent

    @property
    def truncated(self) -> bool:
        """The model stopped at max_tokens: the output is cut short."""
        return self.finish_reason == "length"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "pass": self.passed, "reason": self.reason,
            "cost_usd": round_usd(self.cost_usd), "cached": self.cached,
            "score": round(self.score, 4), "error": self.error, "output": self.output,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "saved_usd": round_usd(self.saved_usd), "assertions": self.assertions,
            "finish_reason": self.finish_reason, "truncated": self.truncated,
            "messages": self.messages,
        }


@dataclass(slots=True)
class RunResult:
    evalset: str
    file: str | None
    model: str
    prompt_hash: str
    threshold: float
    cases: list[CaseResult]
    run_id: str = ""
    estimate_usd: float | None = None
    promoted: bool = False
    batch: bool = False
    seconds: float = 0.0
    retries: int = 0
    evalset_threshold: float = 1.0  # the file's own threshold: the one that promotes
    content_hash: str = ""
    promotion_note: str | None = None  # why a run did not promote
    batch_id: str | None = None  # the provider batch that answered the cases (--batch)

    @property
    def total(self) -> int:
        return len(self.cases)

    @property
    def passed(self) -> int:
        return sum(c.passed for c in self.cases)

    @property
    def failed(self) -> int:
        """Cases that ran and did not pass (errors are counted apart, in JSON and JUnit)."""
        return self.total - self.passed - self.errors

    @property
    def truncated(self) -> int:
        return sum(c.truncated for c in self.cases)

    @property
    def errors(self) -> int:
        return sum(c.error is not None for c in self.cases)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.total if self.total else 0.0

    @property
    def cached_cases(self) -> int:
        return sum(c.cached for c in self.cases)

    @property
    def cost_usd(self) -> float | None:
        """Spent by this run; None when a case ran on a model with no known price."""
        fresh = [c.cost_usd for c in self.cases if not c.cached]
        return None if any(c is None for c in fresh) else sum(c or 0.0 for c in fresh)

    @property
    def saved_usd(self) -> float | None:
        saved = [c.saved_usd for c in self.cases if c.cached]
        return None if any(s is None for s in saved) else sum(s or 0.0 for s in saved)

    @property
    def status(self) -> str:
        if self.errors:
            return "error"
        return "pass" if self.pass_rate >= self.threshold - 1e-12 else "fail"

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "prompt_hash": self.prompt_hash,
            "pass_rate": round(self.pass_rate, 4), "threshold": self.threshold,
            "passed": self.passed, "failed": self.failed, "cost_usd": round_usd(self.cost_usd),
            "cached_cases": self.cached_cases,
            "cases": [c.as_json() for c in self.cases],
            "evalset": self.evalset, "file": self.file, "run_id": self.run_id,
            "status": self.status, "errors": self.errors, "saved_usd": round_usd(self.saved_usd),
            "estimate_usd": round_usd(self.estimate_usd), "promoted": self.promoted,
            "batch": self.batch, "retries": self.retries,
            "evalset_threshold": self.evalset_threshold, "content_hash": self.content_hash,
            "promotion_note": self.promotion_note, "truncated": self.truncated,
            "batch_id": self.batch_id,
        }


# -- JSON ------------------------------------------------------------------------------------
def json_report(runs: list[RunResult]) -> dict[str, Any]:
    if len(runs) == 1:
        return runs[0].as_json()
    total = sum(r.total for r in runs)
    passed = sum(r.passed for r in runs)
    costs = [r.cost_usd for r in runs]
    saved = [r.saved_usd for r in runs]
    models = sorted({r.model for r in runs})
    cases = []
    for r in runs:
        cases.extend({**c.as_json(), "evalset": r.evalset} for c in r.cases)
    return {
        "model": models[0] if len(models) == 1 else None,
        "prompt_hash": None,
        "pass_rate": round(passed / total, 4) if total else 0.0,
        "threshold": None,
        "passed": passed, "failed": sum(r.failed for r in runs),
        "cost_usd": sum_usd(costs),
        "cached_cases": sum(r.cached_cases for r in runs),
        "cases": cases,
        "status": ("error" if any(r.status == "error" for r in runs) else
                   "fail" if any(r.status == "fail" for r in runs) else "pass"),
        "errors": sum(r.errors for r in runs),
        "saved_usd": sum_usd(saved),
        "evalsets": [r.as_json() for r in runs],
    }


def write_json(path: Path, runs: list[RunResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_report(runs), indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")


# -- JUnit -----------------------------------------------------------------------------------
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _XML_INVALID.sub("\ufffd", text)


def junit_xml(runs: list[RunResult]) -> ET.Element:
    root = ET.Element("testsuites", {
        "name": "devloop eval",
        "tests": str(sum(r.total for r in runs)),
        "failures": str(sum(r.failed for r in runs)),
        "errors": str(sum(r.errors for r in runs)),
        "time": f"{sum(r.seconds for r in runs):.3f}",
    })
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    for run in runs:
        suite = ET.SubElement(root, "testsuite", {
            "name": run.evalset, "tests": str(run.total),
            "failures": str(run.failed), "errors": str(run.errors),
            "skipped": "0", "time": f"{run.seconds:.3f}", "timestamp": stamp,
        })
        props = ET.SubElement(suite, "properties")
        for name, value in (("model", run.model), ("prompt_hash", run.prompt_hash),
                            ("pass_rate", f"{run.pass_rate:.4f}"),
                            ("threshold", f"{run.threshold:g}"),
                            ("cost_usd", format_usd(run.cost_usd)),
                            ("cached_cases", str(run.cached_cases)),
                            ("status", run.status),
                            *((("batch_id", run.batch_id),) if run.batch_id else ())):
            ET.SubElement(props, "property", {"name": name, "value": _xml_text(value)})
        for case in run.cases:
            # a cached case reports the latency measured when it ran (said in system-err)
            seconds = (case.latency_ms or 0.0) / 1000
            tc = ET.SubElement(suite, "testcase", {
                "classname": f"devloop.eval.{run.evalset}", "name": case.id,
                "time": f"{seconds:.3f}",
            })
            notes = _case_notes(case)
            if notes:
                tc_props = ET.SubElement(tc, "properties")
                for name, value in (("cached", str(case.cached).lower()),
                                    ("finish_reason", case.finish_reason or "")):
                    ET.SubElement(tc_props, "property", {"name": name, "value": value})
            if case.error is not None:
                el = ET.SubElement(tc, "error", {"message": _xml_text(case.error[:500]),
                                                 "type": "EvalError"})
                el.text = _xml_text(case.error)
            elif not case.passed:
                el = ET.SubElement(tc, "failure", {"message": _xml_text(case.reason[:500]),
                                                   "type": "AssertionFailed"})
                el.text = _xml_text("\n".join(
                    f"{'PASS' if a['pass'] else 'FAIL'} {a['reason']}" for a in case.assertions))
            out = ET.SubElement(tc, "system-out")
            out.text = _xml_text(case.output)
            if notes:
                err = ET.SubElement(tc, "system-err")
                err.text = _xml_text("\n".join(notes))
    return root


def _case_notes(case: CaseResult) -> list[str]:
    notes = []
    if case.truncated:
        notes.append("TRUNCATED: finish_reason is length (the output hit max_tokens)")
    if case.cached:
        notes.append("cached result: time, latency and cost checks are from the run that "
                     "produced it")
    return notes


def write_junit(path: Path, runs: list[RunResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tree = ET.ElementTree(junit_xml(runs))
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)


# -- terminal --------------------------------------------------------------------------------
def _cut(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def table(run: RunResult, width: int | None = None) -> str:
    width = width or shutil.get_terminal_size((120, 24)).columns
    id_w = min(max([len(c.id) for c in run.cases] + [4]), 28)
    fixed = id_w + 6 + 12 + 12 + 8
    reason_w = max(width - fixed, 20)
    lines = [f"{'case':<{id_w}}  {'result':<6}  {'reason':<{reason_w}}  {'tokens':>10}  "
             f"{'cost':>10}"]
    for c in run.cases:
        result = "ERROR" if c.error is not None else ("PASS" if c.passed else "FAIL")
        tokens = f"{c.prompt_tokens}+{c.completion_tokens}"
        cost = "cached" if c.cached else format_usd(c.cost_usd)
        reason = c.error or c.reason
        if c.truncated:
            reason = f"[TRUNCATED: finish_reason length] {reason}"
        lines.append(f"{_cut(c.id, id_w):<{id_w}}  {result:<6}  "
                     f"{_cut(reason, reason_w):<{reason_w}}  {tokens:>10}  "
                     f"{cost:>10}")
    return "\n".join(lines)


def summary(run: RunResult) -> str:
    verdict = {"pass": "PASS", "fail": "FAIL", "error": "ERROR"}[run.status]
    parts = [f"{run.evalset} on {run.model}: {run.passed}/{run.total} passed "
             f"({run.pass_rate:.0%}, threshold {run.threshold:.0%}) {verdict}",
             f"cost {format_usd(run.cost_usd)}"]
    if run.cached_cases:
        parts.append(f"{run.cached_cases} of {run.total} cases from cache "
                     f"(saved {format_usd(run.saved_usd)})")
    if run.errors:
        parts.append(f"{run.errors} errors")
    if run.truncated:
        parts.append(f"{run.truncated} output(s) truncated at max_tokens")
    if run.promoted:
        parts.append(f"promoted for {run.model} (content {run.content_hash[:12]})")
    elif run.promotion_note:
        parts.append(run.promotion_note)
    return "; ".join(parts)


class Progress:
    """A progress bar on stderr; one plain line per case when stderr is not a terminal."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None,
                 enabled: bool = True) -> None:
        self.total, self.label, self.done = total, label, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.spent = 0.0

    def advance(self, case_id: str, status: str, cost: float | None = None) -> None:
        self.done += 1
        self.spent += cost or 0.0
        if not self.enabled:
            return
        if self.tty:
            bar_w = 24
            filled = int(bar_w * self.done / self.total)
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (bar_w - filled)}] "
                              f"{self.done}/{self.total} ${self.spent:.4f} ")
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"{self.label}: {self.done}/{self.total} {case_id} {status}\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        if self.enabled:
            self.stream.write(("\r" if self.tty else "") + f"{self.label}: {text}\n")
            self.stream.flush()
