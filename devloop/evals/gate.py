"""Promotions that cannot be gamed, and the CI gate that checks them.

A run promotes only when it had no errors and its pass rate meets the eval set's OWN
threshold (``--threshold`` is a report option: below the file's it never promotes, and the
run says so). A promotion records the eval set's content hash (prompt, cases, assertions,
threshold, model, request settings), the model it is for, and each case's hash, in SQLite and
in ``devloop.promotions.json`` beside the eval set (committed, for CI).

``devloop eval --gate`` needs a promotion for exactly the current content hash on the model
it checks, and re-checks the record against the file as it is now: its threshold, its pass
rate against that threshold, its cases. When nothing matches it names what differs from the
closest record (model, prompt, threshold, cases added, removed or changed, settings).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devloop.evals.promotions import promotions_path, read_promotions, write_promotion
from devloop.store.evals import EvalStore

if TYPE_CHECKING:
    from devloop.config import Profile
    from devloop.evals.evalset import EvalSet
    from devloop.evals.plan import Plan, RunOptions
    from devloop.evals.report import RunResult


# -- recording -------------------------------------------------------------------------------
def promotion_block(run: RunResult) -> str | None:
    """Why this run does not promote (None: it does)."""
    if run.errors:
        return f"not promoted: {run.errors} case(s) errored"
    if run.pass_rate < run.evalset_threshold - 1e-12:
        if run.threshold < run.evalset_threshold - 1e-12:
            return (f"not promoted: --threshold {run.threshold:g} is below the eval set's "
                    f"threshold {run.evalset_threshold:g}, so it only changes the exit code; "
                    f"pass rate {run.pass_rate:.0%}")
        return f"not promoted: pass rate {run.pass_rate:.0%} is below the threshold"
    return None


def record(store: EvalStore, plan: Plan, run: RunResult) -> str | None:
    """Store the run and its cases; promote when it earned it. Returns a warning, if any."""
    now = time.time()
    rows = []
    for item, case in zip(plan.items, run.cases, strict=True):
        rows.append({
            "run_id": run.run_id, "ts": now, "cache_key": item.key, "evalset": run.evalset,
            "prompt_hash": run.prompt_hash, "case_hash": item.case_hash, "case_id": case.id,
            "model": run.model, "pass": int(case.passed), "score": case.score,
            "reason": case.reason, "output": case.output,
            "prompt_tokens": case.prompt_tokens, "completion_tokens": case.completion_tokens,
            # a cache-served row keeps the original cost so later hits report what they save
            "cost_usd": case.saved_usd if case.cached else case.cost_usd,
            "latency_ms": case.latency_ms, "cached": int(case.cached), "error": case.error,
            "assertions_json": json.dumps(case.assertions, ensure_ascii=False),
            "finish_reason": case.finish_reason,
        })
    store.record({
        "id": run.run_id, "ts": now, "evalset": run.evalset, "file": run.file,
        "prompt_hash": run.prompt_hash, "model": run.model, "api_base": plan.api_base,
        "threshold": run.threshold, "pass_rate": run.pass_rate, "cases": run.total,
        "passed": run.passed, "failed": run.failed, "errors": run.errors,
        "cached_cases": run.cached_cases, "cost_usd": run.cost_usd, "saved_usd": run.saved_usd,
        "estimate_usd": run.estimate_usd, "status": run.status, "batch": int(run.batch),
    }, rows)
    block = promotion_block(run)
    if block is not None:
        run.promotion_note = block
        return None
    entry = {
        "evalset": run.evalset, "content_hash": run.content_hash, "model": run.model,
        "prompt_hash": run.prompt_hash, "pass_rate": round(run.pass_rate, 4),
        "threshold": run.evalset_threshold, "run_id": run.run_id,
        "cases": plan.evalset.case_hashes(),
    }
    store.promote(run.prompt_hash, run.model, run.evalset, run.file, run.run_id,
                  run.pass_rate, run.evalset_threshold)
    store.promote_content({**{k: v for k, v in entry.items() if k != "cases"},
                           "file": run.file, "cases_json": json.dumps(entry["cases"])})
    run.promoted = True
    if plan.evalset.source is not None:
        try:
            write_promotion(plan.evalset.source, entry)
        except OSError as exc:
            return (f"promoted in the database, but the promotion file could not be "
                    f"written ({exc.filename}: {exc.strerror}); --gate in CI needs it")
    return None


# -- the gate --------------------------------------------------------------------------------
@dataclass(slots=True)
class GateResult:
    evalset: str
    file: str | None
    model: str
    prompt_hash: str
    promoted: bool
    where: str  # "database", "promotion file" or ""
    problems: list[str] = field(default_factory=list)
    content_hash: str = ""


def _candidates(es: EvalSet, store: EvalStore | None) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if store is not None:
        for row in store.content_promotions(es.name):
            found.append(("database", {**row, "cases": json.loads(row.get("cases_json")
                                                                   or "{}")}))
    if es.source is not None:
        for entry in read_promotions(promotions_path(Path(es.source))):
            if entry.get("evalset") == es.name:
                found.append(("promotion file", entry))
    return found


def differences(es: EvalSet, model: str, rec: dict[str, Any]) -> list[str]:
    """What differs between a promotion record and the eval set as it is now."""
    out: list[str] = []
    if rec.get("model") != model:
        out.append(f"the promotion is for model {rec.get('model')}, the gate checks {model} "
                   f"(pass --model {rec.get('model')} if that is the production model)")
    if rec.get("prompt_hash") != es.prompt_hash:
        out.append("the prompt changed since the promoted run")
    threshold = rec.get("threshold")
    if not isinstance(threshold, int | float) or abs(threshold - es.threshold) > 1e-12:
        out.append(f"the threshold is {es.threshold:g} in the file, {threshold} in the record")
    rate = rec.get("pass_rate")
    if not isinstance(rate, int | float) or rate < es.threshold - 1e-12:
        out.append(f"the recorded pass rate {rate} is below the file's threshold "
                   f"{es.threshold:g}")
    now = es.case_hashes()
    cases = rec.get("cases") if isinstance(rec.get("cases"), dict) else {}
    added = [c for c in now if c not in cases]
    removed = [c for c in cases if c not in now]
    changed = [c for c in now if c in cases and cases[c] != now[c]]
    if added:
        out.append("case(s) never run in the promoted eval: " + ", ".join(map(repr, added)))
    if removed:
        out.append("case(s) removed since: " + ", ".join(map(repr, removed)))
    if changed:
        out.append("case(s) changed since (vars or assertions): "
                   + ", ".join(map(repr, changed)))
    if not out and rec.get("content_hash") != es.content_hash(model):
        out.append("the request settings (temperature, max_tokens, provider config, grader) "
                   "or allow_empty changed")
    return out


def gate(evalsets: list[EvalSet], opts: RunOptions, profile: Profile,
         store: EvalStore | None) -> list[GateResult]:
    """Has each eval set, exactly as it is now, passed on the model the gate checks?"""
    from devloop.evals.plan import model_for

    out = []
    for es in evalsets:
        model = model_for(es, opts, profile)
        content = es.content_hash(model)
        result = GateResult(es.name, str(es.source) if es.source else None, model,
                            es.prompt_hash, False, "", content_hash=content)
        candidates = _candidates(es, store)
        for where, rec in candidates:
            if rec.get("content_hash") == content and rec.get("model") == model:
                problems = differences(es, model, rec)
                if not problems:
                    result.promoted, result.where = True, where
                    break
                result.problems = problems
        if not result.promoted and not result.problems:
            same_model = [c for c in candidates if c[1].get("model") == model]
            closest = (same_model or candidates)[:1]
            if closest:
                result.problems = differences(es, model, closest[0][1])
            else:
                result.problems = [f"no passing eval of this eval set on {model}"]
        out.append(result)
    return out
