"""Running eval sets on the production model: plan (cache lookups, worst-case estimate), call,
grade, record, promote.

Nothing here prints except through :class:`devloop.progress.CaseProgress`; the CLI decides
exit codes. A case whose model call fails for good is an *error* (the run's status is
``error``, exit 2), not a failed check.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from typing import Any

from devloop.config import Profile
from devloop.evals.assertions import (
    CaseError,
    Grader,
    Output,
    evaluate,
    grader_model,
    needs_grader,
    render_value,
    rubric_messages,
)
from devloop.evals.batch import batch_replies
from devloop.evals.client import EvalCallError, LiteLLMGrader, ModelClient, Reply
from devloop.evals.evalset import EvalSet
from devloop.evals.files import load_targets
from devloop.evals.gate import gate, record
from devloop.evals.plan import Plan, PlannedCase, RunOptions, model_for
from devloop.evals.promotions import cache_key
from devloop.evals.report import CaseResult, RunResult
from devloop.pricing import Pricing
from devloop.progress import CaseProgress
from devloop.store.evals import EvalStore
from devloop.tokens import count_tokens

__all__ = ["RunOptions", "gate", "load_targets", "model_for", "record"]

DEFAULT_MAX_TOKENS = 1024  # sent when an eval set sets none, so the estimate is a true bound
# The model's own tokenizer is not at hand: cl100k counts get a margin (smaller vocabularies
# use more tokens for the same text) plus chat-template tokens, so the estimate stays a bound.
TOKENIZER_MARGIN = 1.25
MESSAGE_OVERHEAD_TOKENS = 8


# -- planning and the worst-case estimate --------------------------------------------------
def prompt_tokens(messages: list[dict[str, str]]) -> int:
    """An upper estimate of a rendered prompt's tokens."""
    text_tokens = sum(count_tokens(m["content"]) for m in messages)
    return math.ceil(text_tokens * TOKENIZER_MARGIN) + MESSAGE_OVERHEAD_TOKENS * (
        len(messages) + 1)


def case_estimate(item: PlannedCase, plan: Plan, pricing: Pricing) -> float | None:
    """Worst case for one case: its prompt plus max_tokens out, plus grading calls. None
    when a model has no price (it is added to ``plan.unpriced``)."""
    total: float | None = pricing.cost(plan.model, prompt_tokens(item.messages),
                                       plan.max_tokens)
    if total is None:
        plan.unpriced.add(plan.model)
    for a in _flat(item.case.assertions):
        value = render_value(a.value, item.case.vars, plan.evalset.syntax)
        if a.base_type == "llm-rubric":
            model = grader_model(a) or plan.judge_model
            judge_in = prompt_tokens(rubric_messages(str(value), "")) + plan.max_tokens
            cost = getattr(pricing, "sync", pricing).cost(model, judge_in,
                                                          LiteLLMGrader.JUDGE_MAX_TOKENS)
        elif a.base_type == "similar":
            model = grader_model(a) or plan.embedding_model
            texts = value if isinstance(value, list) else [value]
            emb_in = plan.max_tokens + sum(
                math.ceil(count_tokens(str(t)) * TOKENIZER_MARGIN) for t in texts)
            cost = getattr(pricing, "sync", pricing).cost(model, emb_in, 0)
        else:
            continue
        if cost is None:
            plan.unpriced.add(model)
        total = None if (total is None or cost is None) else total + cost
    return total


def _flat(assertions: list[Any]) -> list[Any]:
    out = []
    for a in assertions:
        out.append(a)
        out.extend(_flat(a.children or []))
    return out


def make_plan(evalset: EvalSet, opts: RunOptions, profile: Profile, store: EvalStore | None,
              pricing: Pricing) -> Plan:
    model = model_for(evalset, opts, profile)
    graded: set[str] = set()
    for case in evalset.cases:
        graded |= needs_grader(case.assertions)
    from devloop.evals.promptfoo import provider_to_model

    pinned = provider_to_model(evalset.grader) if evalset.grader else None
    judge = opts.judge_model or pinned or model
    embedding = opts.embedding_model or pinned or model
    max_tokens = evalset.max_tokens or DEFAULT_MAX_TOKENS
    api_base = opts.api_base or evalset.api_base
    params: dict[str, Any] = {**evalset.request_params(), "max_tokens": max_tokens,
                              "api_base": api_base}
    if "llm-rubric" in graded:
        params["judge"] = judge
    if "similar" in graded:
        params["embedding"] = embedding
    threshold = opts.threshold if opts.threshold is not None else evalset.threshold
    plan = Plan(evalset, model, threshold, max_tokens, params, judge, embedding,
                api_base=api_base)
    prompt_hash = evalset.prompt_hash
    for case in evalset.cases:
        case_hash = evalset.case_hash(case)
        key = cache_key(prompt_hash, case_hash, model, params)
        problem = evalset.empty_reason(case)
        cached = (store.cached(key) if (store is not None and opts.use_cache and problem is None)
                  else None)
        plan.items.append(PlannedCase(case, case_hash, key, evalset.render(case.vars), cached,
                                      problem))
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


TIME_DEPENDENT = ("latency", "cost")


def _from_cache(item: PlannedCase) -> CaseResult:
    """A stored verdict. Latency and cost checks are not re-measured: they are marked as
    cached (the reason says when they were measured) so the report never passes them off as
    this run's."""
    row = item.cached or {}
    assertions = json.loads(row.get("assertions_json") or "[]")
    for a in assertions:
        if str(a.get("type", "")).removeprefix("not-") in TIME_DEPENDENT:
            a["cached"] = True
            if "cached run" not in str(a.get("reason", "")):
                a["reason"] = f"{a.get('reason', '')} (cached: measured on an earlier run)"
    return CaseResult(
        id=item.case.id, passed=bool(row.get("pass")), reason=str(row.get("reason") or ""),
        cost_usd=0.0, cached=True, score=float(row.get("score") or 0.0),
        output=str(row.get("output") or ""), prompt_tokens=int(row.get("prompt_tokens") or 0),
        completion_tokens=int(row.get("completion_tokens") or 0),
        latency_ms=row.get("latency_ms"), assertions=assertions,
        saved_usd=row.get("cost_usd"), description=item.case.description,
        finish_reason=row.get("finish_reason"),
    )


def prompt_text(messages: list[dict[str, str]]) -> str:
    """The rendered prompt as promptfoo hands it to code (``context.prompt``)."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return json.dumps(messages, indent=2, ensure_ascii=False)


async def grade(item: PlannedCase, plan: Plan, reply: Reply, pricing: Pricing,
                grader: Grader | None) -> CaseResult:
    call_cost = pricing.cost(plan.model, reply.prompt_tokens, reply.completion_tokens)
    out = Output(reply.text, call_cost, reply.latency_ms, item.case.vars, plan.evalset.syntax,
                 reply.finish_reason, prompt_text(item.messages))
    base = CaseResult(id=item.case.id, passed=False, reason="", cost_usd=call_cost,
                      output=reply.text, prompt_tokens=reply.prompt_tokens,
                      completion_tokens=reply.completion_tokens, latency_ms=reply.latency_ms,
                      description=item.case.description, finish_reason=reply.finish_reason)
    try:
        if item.case.transform:
            from devloop.evals.code_asserts import apply_transform

            out.text = await apply_transform(item.case.transform, out)
        verdict = await evaluate(item.case.assertions, out, item.case.threshold, grader)
    except (EvalCallError, CaseError) as exc:
        what = "grading failed: " if isinstance(exc, EvalCallError) else ""
        base.error = base.reason = f"{what}{exc}"
        return base
    grading = verdict.grading_cost_usd
    if call_cost is not None:
        base.cost_usd = _nan_to_none(call_cost + grading)
    base.passed, base.score, base.reason = verdict.passed, verdict.score, verdict.reason
    base.assertions = [
        {**r.as_dict(), "cost_usd": _nan_to_none(r.cost_usd)} for r in verdict.results]
    return base


def _error_case(item: PlannedCase, exc: Exception | str) -> CaseResult:
    return CaseResult(id=item.case.id, passed=False, reason=f"error: {exc}", cost_usd=0.0,
                      error=str(exc), description=item.case.description)


async def _direct(plan: Plan, item: PlannedCase, client: ModelClient) -> Reply | Exception:
    extra = {k: v for k, v in plan.params.items()
             if k not in ("temperature", "max_tokens", "api_base", "judge", "embedding")}
    try:
        return await client.chat(plan.model, item.messages, plan.params.get("temperature"),
                                 plan.max_tokens, api_base=plan.api_base, **extra)
    except EvalCallError as exc:
        return exc


async def run_plan(plan: Plan, opts: RunOptions, client: ModelClient, pricing: Pricing,
                   progress: CaseProgress) -> RunResult:
    started = time.perf_counter()
    grader = LiteLLMGrader(client, getattr(pricing, "sync", pricing), plan.judge_model,
                           plan.embedding_model, plan.api_base)
    results: dict[int, CaseResult] = {}
    for n, item in enumerate(plan.items):
        if item.problem is not None:
            results[n] = _error_case(item, item.problem)
            progress.advance(item.case.id, "ERROR")
        elif item.cached is not None:
            results[n] = _from_cache(item)
            progress.advance(item.case.id, "cached")

    async def finish(n: int, item: PlannedCase, reply: Reply | Exception) -> None:
        if isinstance(reply, Exception):
            result = _error_case(item, reply)
        else:
            result = await grade(item, plan, reply, pricing, grader)
        results[n] = result
        status = "ERROR" if result.error else ("PASS" if result.passed else "FAIL")
        progress.advance(item.case.id, status, result.cost_usd)

    todo = [(n, i) for n, i in enumerate(plan.items) if i in plan.to_run]
    if todo and opts.batch:
        try:
            replies = await batch_replies(plan, [i for _, i in todo], opts, client, progress,
                                          pricing)
        except EvalCallError as exc:  # the batch as a whole failed: every case is an error
            replies = {i.case.id: exc for _, i in todo}
        await asyncio.gather(*(finish(n, i, replies[i.case.id]) for n, i in todo))
    elif todo:
        await client.warm_up(plan.model, plan.api_base)

        async def one(n: int, item: PlannedCase) -> None:
            await finish(n, item, await _direct(plan, item, client))

        await asyncio.gather(*(one(n, i) for n, i in todo))
    source = plan.evalset.source
    return RunResult(
        evalset=plan.evalset.name, file=str(source) if source else None, model=plan.model,
        prompt_hash=plan.evalset.prompt_hash, threshold=plan.threshold,
        cases=[_with_prompt(results[n], plan.items[n]) for n in range(len(plan.items))],
        run_id=uuid.uuid4().hex,
        estimate_usd=plan.estimate_usd, batch=opts.batch, batch_id=plan.batch_id,
        seconds=time.perf_counter() - started, evalset_threshold=plan.evalset.threshold,
        content_hash=plan.evalset.content_hash(plan.model),
    )


def _with_prompt(result: CaseResult, item: PlannedCase) -> CaseResult:
    result.messages = item.messages
    return result


async def run_plans(plans: list[Plan], opts: RunOptions, pricing: Pricing) -> list[RunResult]:
    client = ModelClient(opts.api_base, opts.concurrency, opts.max_retries, opts.timeout_s,
                         opts.backoff_s)
    out = []
    for plan in plans:
        label = plan.evalset.name
        progress = CaseProgress(len(plan.items), label, enabled=opts.progress)
        client.on_retry = progress.note  # retries shown as they happen
        progress.begin()
        retries_before = client.retries
        run = await run_plan(plan, opts, client, pricing, progress)
        run.retries = client.retries - retries_before
        out.append(run)
    return out
