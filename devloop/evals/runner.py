"""Running eval sets on the production model: plan (cache lookups, worst-case estimate), call,
grade, record, promote.

Nothing here prints except through :class:`devloop.evals.report.Progress`; the CLI decides
exit codes. A case whose model call fails for good is an *error* (the run's status is
``error``, exit 2), not a failed check.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devloop.config import ConfigError, Profile, load_yaml
from devloop.evals.assertions import (
    Grader,
    Output,
    evaluate,
    needs_grader,
    render_value,
    rubric_messages,
)
from devloop.evals.batch import batch_replies
from devloop.evals.client import EvalCallError, LiteLLMGrader, ModelClient, Reply
from devloop.evals.evalset import EvalSet, find_evalsets, load_evalset
from devloop.evals.plan import Plan, PlannedCase, RunOptions
from devloop.evals.promotions import cache_key, file_promotion, write_promotion
from devloop.evals.promptfoo import is_promptfoo_config, load_promptfoo
from devloop.evals.report import CaseResult, Progress, RunResult
from devloop.pricing import Pricing
from devloop.store.evals import EvalStore
from devloop.tokens import count_tokens

DEFAULT_MAX_TOKENS = 1024  # sent when an eval set sets none, so the estimate is a true bound
# The model's own tokenizer is not at hand: cl100k counts get a margin (smaller vocabularies
# use more tokens for the same text) plus chat-template tokens, so the estimate stays a bound.
TOKENIZER_MARGIN = 1.25
MESSAGE_OVERHEAD_TOKENS = 8


# -- loading ---------------------------------------------------------------------------------
def load_targets(paths: list[str]) -> list[EvalSet]:
    """Eval set files and promptfoo configs (folders expand to their YAML files)."""
    sets: list[EvalSet] = []
    for path in find_evalsets(paths):
        if path.name == "devloop.promotions.json":
            continue
        data = None if path.name.startswith("promptfooconfig") else load_yaml(path)
        if is_promptfoo_config(path, data):
            sets.extend(load_promptfoo(path))
        else:
            sets.append(load_evalset(path))
    if not sets:
        raise ConfigError(", ".join(paths), "", "no eval set files found")
    return sets


def model_for(evalset: EvalSet, opts: RunOptions, profile: Profile) -> str:
    return opts.model or evalset.model_for(profile.production_model)


# -- planning and the worst-case estimate --------------------------------------------------
def prompt_tokens(messages: list[dict[str, str]]) -> int:
    """An upper estimate of a rendered prompt's tokens."""
    text_tokens = sum(count_tokens(m["content"]) for m in messages)
    return math.ceil(text_tokens * TOKENIZER_MARGIN) + MESSAGE_OVERHEAD_TOKENS * (
        len(messages) + 1)


def case_estimate(item: PlannedCase, plan: Plan, pricing: Pricing) -> float | None:
    """Worst case for one case: its prompt plus max_tokens out, plus grading calls."""
    total = pricing.cost(plan.model, prompt_tokens(item.messages), plan.max_tokens)
    if total is None:
        return None
    for a in item.case.assertions:
        value = render_value(a.value, item.case.vars)
        if a.base_type == "llm-rubric":
            judge_in = prompt_tokens(rubric_messages(str(value), "")) + plan.max_tokens
            cost = getattr(pricing, "sync", pricing).cost(plan.judge_model, judge_in,
                                                          LiteLLMGrader.JUDGE_MAX_TOKENS)
        elif a.base_type == "similar":
            texts = value if isinstance(value, list) else [value]
            emb_in = plan.max_tokens + sum(
                math.ceil(count_tokens(str(t)) * TOKENIZER_MARGIN) for t in texts)
            cost = getattr(pricing, "sync", pricing).cost(plan.embedding_model, emb_in, 0)
        else:
            continue
        if cost is None:
            return None
        total += cost
    return total


def make_plan(evalset: EvalSet, opts: RunOptions, profile: Profile, store: EvalStore | None,
              pricing: Pricing) -> Plan:
    model = model_for(evalset, opts, profile)
    graded: set[str] = set()
    for case in evalset.cases:
        graded |= needs_grader(case.assertions)
    judge = opts.judge_model or model
    embedding = opts.embedding_model or model
    max_tokens = evalset.max_tokens or DEFAULT_MAX_TOKENS
    params: dict[str, Any] = {"temperature": evalset.temperature, "max_tokens": max_tokens,
                              "api_base": opts.api_base}
    if "llm-rubric" in graded:
        params["judge"] = judge
    if "similar" in graded:
        params["embedding"] = embedding
    threshold = opts.threshold if opts.threshold is not None else evalset.threshold
    plan = Plan(evalset, model, threshold, max_tokens, params, judge, embedding)
    prompt_hash = evalset.prompt_hash
    for case in evalset.cases:
        case_hash = evalset.case_hash(case)
        key = cache_key(prompt_hash, case_hash, model, params)
        cached = store.cached(key) if (store is not None and opts.use_cache) else None
        plan.items.append(PlannedCase(case, case_hash, key, evalset.render(case.vars), cached))
    estimate: float | None = 0.0
    for item in plan.to_run:
        cost = case_estimate(item, plan, pricing)
        estimate = None if (estimate is None or cost is None) else estimate + cost
    plan.estimate_usd = estimate
    return plan


def total_estimate(plans: list[Plan]) -> float | None:
    total = 0.0
    for plan in plans:
        if plan.estimate_usd is None:
            return None
        total += plan.estimate_usd
    return total


# -- running ---------------------------------------------------------------------------------
def _nan_to_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def _from_cache(item: PlannedCase) -> CaseResult:
    row = item.cached or {}
    return CaseResult(
        id=item.case.id, passed=bool(row.get("pass")), reason=str(row.get("reason") or ""),
        cost_usd=0.0, cached=True, score=float(row.get("score") or 0.0),
        output=str(row.get("output") or ""), prompt_tokens=int(row.get("prompt_tokens") or 0),
        completion_tokens=int(row.get("completion_tokens") or 0),
        latency_ms=row.get("latency_ms"), assertions=json.loads(row.get("assertions_json")
                                                                 or "[]"),
        saved_usd=row.get("cost_usd"), description=item.case.description,
    )


async def grade(item: PlannedCase, plan: Plan, reply: Reply, pricing: Pricing,
                grader: Grader | None) -> CaseResult:
    call_cost = pricing.cost(plan.model, reply.prompt_tokens, reply.completion_tokens)
    out = Output(reply.text, call_cost, reply.latency_ms, item.case.vars)
    base = CaseResult(id=item.case.id, passed=False, reason="", cost_usd=call_cost,
                      output=reply.text, prompt_tokens=reply.prompt_tokens,
                      completion_tokens=reply.completion_tokens, latency_ms=reply.latency_ms,
                      description=item.case.description)
    try:
        verdict = await evaluate(item.case.assertions, out, item.case.threshold, grader)
    except EvalCallError as exc:
        base.error, base.reason = f"grading failed: {exc}", f"grading failed: {exc}"
        return base
    grading = verdict.grading_cost_usd
    if call_cost is not None:
        base.cost_usd = _nan_to_none(call_cost + grading)
    base.passed, base.score, base.reason = verdict.passed, verdict.score, verdict.reason
    base.assertions = [
        {**r.as_dict(), "cost_usd": _nan_to_none(r.cost_usd)} for r in verdict.results]
    return base


def _error_case(item: PlannedCase, exc: Exception) -> CaseResult:
    return CaseResult(id=item.case.id, passed=False, reason=f"error: {exc}", cost_usd=0.0,
                      error=str(exc), description=item.case.description)


async def _direct(plan: Plan, item: PlannedCase, client: ModelClient) -> Reply | Exception:
    try:
        return await client.chat(plan.model, item.messages, plan.evalset.temperature,
                                 plan.max_tokens)
    except EvalCallError as exc:
        return exc


async def run_plan(plan: Plan, opts: RunOptions, client: ModelClient, pricing: Pricing,
                   progress: Progress) -> RunResult:
    started = time.perf_counter()
    grader = LiteLLMGrader(client, getattr(pricing, "sync", pricing), plan.judge_model,
                           plan.embedding_model)
    results: dict[str, CaseResult] = {}
    for item in plan.items:
        if item.cached is not None:
            results[item.case.id] = _from_cache(item)
            progress.advance(item.case.id, "cached")

    async def finish(item: PlannedCase, reply: Reply | Exception) -> None:
        if isinstance(reply, Exception):
            result = _error_case(item, reply)
        else:
            result = await grade(item, plan, reply, pricing, grader)
        results[item.case.id] = result
        status = "ERROR" if result.error else ("PASS" if result.passed else "FAIL")
        progress.advance(item.case.id, status, result.cost_usd)

    todo = plan.to_run
    if todo and opts.batch:
        try:
            replies = await batch_replies(plan, todo, opts, client, progress, pricing)
        except EvalCallError as exc:  # the batch as a whole failed: every case is an error
            replies = {i.case.id: exc for i in todo}
        await asyncio.gather(*(finish(i, replies[i.case.id]) for i in todo))
    elif todo:
        async def one(item: PlannedCase) -> None:
            await finish(item, await _direct(plan, item, client))

        await asyncio.gather(*(one(i) for i in todo))
    source = plan.evalset.source
    return RunResult(
        evalset=plan.evalset.name, file=str(source) if source else None, model=plan.model,
        prompt_hash=plan.evalset.prompt_hash, threshold=plan.threshold,
        cases=[results[i.case.id] for i in plan.items], run_id=uuid.uuid4().hex,
        estimate_usd=plan.estimate_usd, batch=opts.batch, batch_id=plan.batch_id,
        seconds=time.perf_counter() - started,
    )


async def run_plans(plans: list[Plan], opts: RunOptions, pricing: Pricing) -> list[RunResult]:
    client = ModelClient(opts.api_base, opts.concurrency, opts.max_retries, opts.timeout_s,
                         opts.backoff_s)
    out = []
    for plan in plans:
        label = plan.evalset.name
        progress = Progress(len(plan.items), label, enabled=opts.progress)
        retries_before = client.retries
        run = await run_plan(plan, opts, client, pricing, progress)
        run.retries = client.retries - retries_before
        out.append(run)
    return out


# -- recording and promotion -----------------------------------------------------------------
def record(store: EvalStore, plan: Plan, run: RunResult) -> str | None:
    """Store the run and its cases; promote a passing prompt. Returns a warning, if any."""
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
        })
    store.record({
        "id": run.run_id, "ts": now, "evalset": run.evalset, "file": run.file,
        "prompt_hash": run.prompt_hash, "model": run.model, "api_base": plan.params["api_base"],
        "threshold": run.threshold, "pass_rate": run.pass_rate, "cases": run.total,
        "passed": run.passed, "failed": run.failed, "errors": run.errors,
        "cached_cases": run.cached_cases, "cost_usd": run.cost_usd, "saved_usd": run.saved_usd,
        "estimate_usd": run.estimate_usd, "status": run.status, "batch": int(run.batch),
    }, rows)
    if run.status == "pass":
        store.promote(run.prompt_hash, run.model, run.evalset, run.file, run.run_id,
                      run.pass_rate, run.threshold)
        run.promoted = True
        if plan.evalset.source is not None:
            try:
                write_promotion(plan.evalset.source, run.evalset, run.prompt_hash, run.model,
                                run.pass_rate, run.threshold, run.run_id)
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


def gate(evalsets: list[EvalSet], opts: RunOptions, profile: Profile,
         store: EvalStore | None) -> list[GateResult]:
    """Is each eval set's current prompt hash promoted on its production model?"""
    out = []
    for es in evalsets:
        model = model_for(es, opts, profile)
        where = ""
        if store is not None and store.promotion(es.prompt_hash, model):
            where = "database"
        elif es.source is not None and file_promotion(Path(es.source), es.prompt_hash, model):
            where = "promotion file"
        out.append(GateResult(es.name, str(es.source) if es.source else None, model,
                              es.prompt_hash, bool(where), where))
    return out
