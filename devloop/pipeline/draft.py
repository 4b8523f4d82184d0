"""Stage 1, draft: the eval set's cases on the local tier, at no spend.

Each case goes through the in-process Gateway with the tier forced to ``local`` (which falls
back to the embedded model when Ollama is not running), so the calls are routed, cached and
written to the ledger like any other. The pass rate is informative (a small local model is
not the production model); what the stage adds is what the same run would have cost on the
production model, and whether the prompt runs at all.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from devloop.backends import BackendError
from devloop.evals.evalset import Case, EvalSet
from devloop.pricing import Pricing
from devloop.types import RequestContext

DRAFT_TIER = "local"  # the usual answer of draft_tier(); the profile decides


def draft_tier(profile: Any, pricing: Pricing | None = None) -> str:
    """The profile's cheapest non-frontier tier (free local tiers first, then priced ones,
    then unpriced ones; ties in the profile's order). A profile with only a frontier tier
    gets "local", which the router refuses with a clear message."""
    pricing = pricing or Pricing(profile)
    ranked: list[tuple[int, float, int, str]] = []
    for index, (name, tier) in enumerate(profile.tiers.items()):
        if name == "frontier" or tier.backend == "litellm":
            continue
        cost = pricing.tier_cost(name, tier.model, 1_000_000, 1_000_000)
        ranked.append((cost is None, cost or 0.0, index, name))
    return min(ranked)[3] if ranked else DRAFT_TIER


class GatewayLike(Protocol):
    """What the draft needs of devloop.gateway.Gateway."""

    pricing: Pricing

    async def call(self, req: Any, ctx: RequestContext) -> Any: ...


class Verdict(BaseModel):
    passed: bool
    score: float = 1.0
    reason: str = ""


# Grades one output against a case's assertions: (case, output text, call facts) -> verdict.
Grader = Callable[[Case, str, dict[str, Any]], Awaitable[Verdict]]
# Told what the draft is doing, one line per step (`watch` prints them).
Progress = Callable[[str], None]


class CaseOutcome(BaseModel):
    id: str
    passed: bool | None  # None: the call failed
    score: float | None = None
    reason: str = ""
    output: str = ""
    error: str | None = None
    tier: str | None = None
    model: str | None = None
    cache: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Prompt tokens the local model did not process again (its KV prefix cache).
    cached_tokens: int = 0
    latency_ms: float = 0.0
    would_cost_usd: float | None = None


class DraftResult(BaseModel):
    status: Literal["pass", "warn", "fail", "error", "skipped"]
    pass_rate: float | None
    would_cost_usd: float | None
    threshold: float
    production_model: str
    errors: int = 0
    tier: str = DRAFT_TIER
    models: list[str] = Field(default_factory=list)
    mean_completion_tokens: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens answered from the local model's prefix cache
    seconds: float = 0.0
    cases: list[CaseOutcome] = Field(default_factory=list)


async def run_case(evalset: EvalSet, case: Case, gateway: GatewayLike, grader: Grader,
                   production_model: str, feature: str, tier: str = DRAFT_TIER) -> CaseOutcome:
    req = evalset.chat_request(case, model=tier)
    ctx = RequestContext(request_id=f"check-{uuid.uuid4().hex[:16]}", endpoint="chat",
                         protocol="openai", feature=feature, forced_tier=tier,
                         origin="check", priority="background")
    started = time.perf_counter()
    try:
        result = await gateway.call(req, ctx)
    except BackendError as exc:
        return CaseOutcome(id=case.id, passed=None, error=str(exc)[:300])
    latency_ms = (time.perf_counter() - started) * 1000
    completion = result.completion
    text = completion.text if completion is not None else ""
    usage = completion.usage if completion is not None else None
    prompt_tokens = usage.prompt_tokens if usage else 0
    completion_tokens = usage.completion_tokens if usage else 0
    cached_tokens = usage.cached_tokens if usage else 0
    facts = {"cost_usd": result.cost_usd or 0.0, "latency_ms": latency_ms,
             "model": result.model, "tier": result.tier,
             "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "syntax": evalset.syntax,
             "finish_reason": getattr(completion, "finish_reason", None)}
    verdict = await grader(case, text, facts)
    return CaseOutcome(
        id=case.id, passed=verdict.passed, score=verdict.score, reason=verdict.reason,
        output=text, tier=result.tier, model=result.model, cache=result.cache,
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        cached_tokens=cached_tokens, latency_ms=round(latency_ms, 1),
        would_cost_usd=gateway.pricing.cost(production_model, prompt_tokens, completion_tokens),
    )


async def run_draft(evalset: EvalSet, gateway: GatewayLike, grader: Grader, *,
                    production_model: str, feature: str | None = None,
                    tier: str | None = None, progress: Progress | None = None,
                    on_case: Callable[[str, str], None] | None = None) -> DraftResult:
    """Run every case on the draft tier (the profile's cheapest non-frontier tier), one at a
    time (a local model is one process).

    The cases go in the eval set's own order: they share the prompt's static prefix, so the
    local model's prefix cache (kept on disk between runs) processes only what differs from
    a case it has seen, and a re-check after editing one case's text redoes only that tail.
    """
    started = time.perf_counter()
    feature = feature or f"check:{evalset.name}"
    profile = getattr(gateway.pricing, "profile", None)
    tier = tier or (draft_tier(profile, gateway.pricing) if profile is not None else DRAFT_TIER)
    outcomes = []
    total = len(evalset.cases)
    for i, case in enumerate(evalset.cases, 1):
        if progress is not None:
            progress(f"draft {i}/{total} {case.id}: running on the {tier} tier")
        outcome = await run_case(evalset, case, gateway, grader, production_model, feature, tier)
        outcomes.append(outcome)
        if progress is not None:
            progress(f"draft {i}/{total} {case.id}: {describe(outcome)}")
        if on_case is not None:  # the progress bar of `devloop check` and the TUI row
            passed = outcome.passed
            on_case(case.id, "error" if passed is None else "pass" if passed else "fail")
    answered = [o for o in outcomes if o.passed is not None]
    errors = len(outcomes) - len(answered)
    pass_rate = (sum(1 for o in answered if o.passed) / len(outcomes)) if answered else None
    costs = [o.would_cost_usd for o in answered]
    would_cost = None if not answered or any(c is None for c in costs) else \
        round(sum(c for c in costs if c is not None), 8)
    status: Literal["pass", "warn", "error"]
    if not answered:
        status = "error"
    elif errors or (pass_rate or 0.0) < evalset.threshold:
        status = "warn"  # informative: the local model is not the production model
    else:
        status = "pass"
    return DraftResult(
        status=status,
        pass_rate=None if pass_rate is None else round(pass_rate, 4),
        would_cost_usd=would_cost,
        threshold=evalset.threshold,
        production_model=production_model,
        errors=errors,
        tier=tier,
        models=sorted({o.model for o in answered if o.model}),
        mean_completion_tokens=round(
            sum(o.completion_tokens for o in answered) / len(answered), 1) if answered else 0.0,
        prompt_tokens=sum(o.prompt_tokens for o in answered),
        cached_tokens=sum(o.cached_tokens for o in answered),
        seconds=round(time.perf_counter() - started, 3),
        cases=outcomes,
    )


def describe(o: CaseOutcome) -> str:
    """One line for a finished case: verdict, time, and what the prefix cache saved."""
    if o.passed is None:
        return f"error: {o.error}"
    verdict = "pass" if o.passed else "fail"
    if o.cache == "hit":
        return f"{verdict} (answered from the response cache)"
    return (f"{verdict} in {o.latency_ms / 1000:.1f}s, {o.prompt_tokens:,} prompt tokens "
            f"({o.cached_tokens:,} reused), {o.completion_tokens:,} generated")
