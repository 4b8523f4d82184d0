"""The routing audit (`devloop eval --from-ledger`): were the calls served locally good enough?

A seeded random sample of the stored chat calls (``store_bodies: true``) that local tiers
(local, embedded, shared) answered is replayed on the production model through litellm, and
each local answer is graded against the production answer:

- ``similar``: cosine similarity of the two answers' embeddings (the eval ``similar``
  grader) at or above ``min_similarity``. Cheap, but needs an embedding model.
- ``judge``: an ``llm-rubric`` judge asked whether the local answer is acceptable in place
  of the production answer. Works with any chat model, costs a call per case.
- ``auto`` (the default): ``similar`` while the embedding model answers; when it cannot
  embed (Anthropic models, for one) the judge grades instead.

Nothing here prints except through :class:`Progress`; the CLI decides exit codes.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from devloop.evals.assertions import (
    DEFAULT_SIMILAR_THRESHOLD,
    CaseError,
    Output,
    evaluate,
    rubric_messages,
)
from devloop.evals.client import EvalCallError, LiteLLMGrader, ModelClient
from devloop.evals.evalset import Assertion
from devloop.evals.report import Progress
from devloop.evals.runner import DEFAULT_MAX_TOKENS, TOKENIZER_MARGIN, prompt_tokens
from devloop.money import round_usd
from devloop.pricing import Pricing
from devloop.store.bodies import StoredCall
from devloop.tokens import count_tokens
from devloop.types import ChatRequest

GraderKind = Literal["auto", "similar", "judge"]
# Replays carry this feature so a devloop in front of the production model books them apart,
# and the audit never samples its own replays.
AUDIT_FEATURE = "devloop-audit"
DEFAULT_SAMPLE = "50"
JUDGE_CONTEXT_CHARS = 8000  # the tail of the conversation the judge sees
# Request fields replayed as sent; model, stream and n are the audit's own.
REPLAYED = ("top_p", "stop", "seed", "presence_penalty", "frequency_penalty",
            "response_format", "tools", "tool_choice")

AGREEMENT_RUBRIC = """\
The output is an answer that a small local model gave to the conversation below. A reference
answer from the production model follows. Pass if the output is acceptable in the reference's
place: it answers the same request, is not wrong where the reference is right, and would
serve the user about as well. Wording, length and style may differ. Score 1.0 when the two
are equivalent, 0.0 when the output is unusable.
<Conversation>
{conversation}
</Conversation>
<Reference>
{reference}
</Reference>"""


@dataclass(slots=True)
class AuditOptions:
    model: str
    api_base: str | None = None
    grader: GraderKind = "auto"
    judge_model: str | None = None
    embedding_model: str | None = None
    min_similarity: float = DEFAULT_SIMILAR_THRESHOLD
    concurrency: int = 4
    max_retries: int = 4
    backoff_s: float = 0.5
    timeout_s: float = 120.0
    progress: bool = True

    @property
    def judge(self) -> str:
        return self.judge_model or self.model

    @property
    def embedder(self) -> str:
        return self.embedding_model or self.model


# -- sampling --------------------------------------------------------------------------------
def parse_sample(text: str) -> tuple[Literal["percent", "count"], float]:
    """'2%' (a share of the matching calls) or 'N' (that many calls)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", text)
    if not m:
        raise ValueError(f"--sample must be a percentage like 2% or a count like 50, "
                         f"not {text!r}")
    value = float(m.group(1))
    if m.group(2):
        if not 0 < value <= 100:
            raise ValueError(f"--sample percentage must be above 0% and at most 100%, "
                             f"not {text.strip()}")
        return "percent", value
    if value < 1 or value != int(value):
        raise ValueError(f"--sample count must be a whole number of at least 1, not {text!r}")
    return "count", value


def choose(calls: list[StoredCall], sample: str, seed: int) -> list[StoredCall]:
    """A seeded random sample (at least one call from a non-empty list), oldest first."""
    kind, value = parse_sample(sample)
    size = math.ceil(len(calls) * value / 100) if kind == "percent" else int(value)
    size = min(max(size, 1 if calls else 0), len(calls))
    picked = random.Random(seed).sample(calls, size)
    return sorted(picked, key=lambda c: (c.ts, c.request_id))


# -- one replay ------------------------------------------------------------------------------
@dataclass(slots=True)
class Replay:
    """A stored call as the production model will receive it."""

    call: StoredCall
    messages: list[dict[str, Any]]
    texts: list[tuple[str, str]]  # (role, text) for the judge and the estimate
    temperature: float | None
    max_tokens: int
    extra: dict[str, Any]


def replay_of(call: StoredCall) -> Replay:
    req = ChatRequest.model_validate(call.request)  # raises ValidationError on a bad row
    messages = [m.model_dump(exclude_none=True) for m in req.messages]
    extra = {k: call.request[k] for k in REPLAYED if call.request.get(k) is not None}
    return Replay(call, messages, [(m.role, m.text()) for m in req.messages], req.temperature,
                  req.token_limit() or DEFAULT_MAX_TOKENS, extra)


def conversation_text(texts: list[tuple[str, str]]) -> str:
    text = "\n".join(f"{role}: {content}" for role, content in texts)
    return text if len(text) <= JUDGE_CONTEXT_CHARS else "…" + text[-JUDGE_CONTEXT_CHARS:]


def judge_assertion(replay: Replay, reference: str) -> Assertion:
    rubric = AGREEMENT_RUBRIC.format(conversation=conversation_text(replay.texts),
                                     reference=reference)
    return Assertion(type="llm-rubric", value=rubric)


# -- the worst-case estimate -----------------------------------------------------------------
def _add(*costs: float | None) -> float | None:
    return None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)


def call_estimate(replay: Replay, opts: AuditOptions, pricing: Pricing) -> float | None:
    """Worst case for one call: the replay (prompt + max_tokens out) plus its grading."""
    as_messages = [{"role": r, "content": t} for r, t in replay.texts]
    call = pricing.cost(opts.model, prompt_tokens(as_messages), replay.max_tokens)
    local = math.ceil(count_tokens(replay.call.response_text) * TOKENIZER_MARGIN)
    similar = pricing.cost(opts.embedder, local + replay.max_tokens, 0)
    rubric = judge_assertion(replay, "")
    judge_in = prompt_tokens(rubric_messages(str(rubric.value), replay.call.response_text))
    judge = pricing.cost(opts.judge, judge_in + replay.max_tokens,
                         LiteLLMGrader.JUDGE_MAX_TOKENS)
    if opts.grader == "similar":
        return _add(call, similar)
    if opts.grader == "judge":
        return _add(call, judge)
    if similar is None or judge is None:  # auto may use either
        return None
    return _add(call, max(similar, judge))


def unpriced(opts: AuditOptions, pricing: Pricing) -> list[str]:
    """The models the audit may call that have no price (why an estimate is unknown)."""
    models = {opts.model}
    if opts.grader in ("auto", "similar"):
        models.add(opts.embedder)
    if opts.grader in ("auto", "judge"):
        models.add(opts.judge)
    return sorted(m for m in models if pricing.price(m) is None)


# -- results ---------------------------------------------------------------------------------
@dataclass(slots=True)
class AuditedCall:
    call: StoredCall
    agree: bool = False
    score: float = 0.0
    reason: str = ""
    grader: str | None = None
    production_text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    latency_ms: float | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        c = self.call
        return {
            "request_id": c.request_id, "ts": c.ts, "feature": c.feature, "tier": c.tier,
            "local_model": c.model, "agree": None if self.error else self.agree,
            "score": round(self.score, 4), "reason": self.reason, "grader": self.grader,
            "cost_usd": round_usd(self.cost_usd), "error": self.error,
            "local_text": c.response_text, "production_text": self.production_text,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
        }


@dataclass(slots=True)
class Tally:
    """Counts for the whole audit or one feature."""

    calls: int = 0
    agreed: int = 0
    errors: int = 0
    costs: list[float | None] = field(default_factory=list)

    def add(self, r: AuditedCall) -> None:
        self.calls += 1
        self.errors += r.error is not None
        self.agreed += r.error is None and r.agree
        self.costs.append(r.cost_usd)

    @property
    def graded(self) -> int:
        return self.calls - self.errors

    @property
    def agreement_rate(self) -> float | None:
        return self.agreed / self.graded if self.graded else None

    @property
    def cost_usd(self) -> float | None:
        return _add(*self.costs)

    def as_json(self) -> dict[str, Any]:
        rate = self.agreement_rate
        return {"calls": self.calls, "agreed": self.agreed,
                "disagreed": self.graded - self.agreed, "errors": self.errors,
                "agreement_rate": None if rate is None else round(rate, 4),
                "cost_usd": round_usd(self.cost_usd)}


@dataclass(slots=True)
class AuditResult:
    model: str
    grader: str  # what graded: similar, judge, or "similar+judge" when auto switched
    sample: str
    seed: int
    population: int  # stored local calls that matched the filters
    calls: list[AuditedCall]
    estimate_usd: float | None = None
    seconds: float = 0.0
    retries: int = 0
    notes: list[str] = field(default_factory=list)

    def total(self) -> Tally:
        t = Tally()
        for r in self.calls:
            t.add(r)
        return t

    def by_feature(self) -> dict[str, Tally]:
        out: dict[str, Tally] = {}
        for r in self.calls:
            out.setdefault(r.call.feature or "(none)", Tally()).add(r)
        return dict(sorted(out.items()))

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "grader": self.grader, "sample": self.sample,
            "seed": self.seed, "population": self.population, "sampled": len(self.calls),
            **self.total().as_json(),
            "estimate_usd": round_usd(self.estimate_usd), "seconds": round(self.seconds, 3),
            "retries": self.retries, "notes": self.notes,
            "features": [{"feature": name, **t.as_json()}
                         for name, t in self.by_feature().items()],
            "results": [r.as_json() for r in self.calls],
        }


# -- running ---------------------------------------------------------------------------------
class Auditor:
    def __init__(self, opts: AuditOptions, pricing: Pricing, client: ModelClient) -> None:
        self.opts, self.pricing, self.client = opts, pricing, client
        self.grader = LiteLLMGrader(client, pricing, opts.judge, opts.embedder)
        self.use_judge = opts.grader == "judge"
        self.used: set[str] = set()
        self.notes: list[str] = []

    async def replay(self, replay: Replay) -> AuditedCall:
        out = AuditedCall(replay.call)
        try:
            reply = await self.client.chat(self.opts.model, replay.messages, replay.temperature,
                                           replay.max_tokens, **replay.extra)
        except EvalCallError as exc:
            out.error = out.reason = f"production call failed: {exc}"
            return out
        out.production_text, out.latency_ms = reply.text, reply.latency_ms
        out.prompt_tokens, out.completion_tokens = reply.prompt_tokens, reply.completion_tokens
        out.cost_usd = self.pricing.cost(self.opts.model, reply.prompt_tokens,
                                         reply.completion_tokens)
        return out

    async def grade(self, replay: Replay, out: AuditedCall) -> None:
        local, reference = replay.call.response_text, out.production_text
        if not local.strip() or not reference.strip():
            out.agree = not local.strip() and not reference.strip()
            out.score, out.grader = float(out.agree), "empty"
            out.reason = ("both answers are empty" if out.agree else
                          f"the {'local' if not local.strip() else 'production'} answer is empty")
            return
        if not self.use_judge:
            similar = Assertion(type="similar", value=reference,
                                threshold=self.opts.min_similarity)
            try:
                return await self._apply(similar, "similar", local, out)
            except EvalCallError as exc:
                if self.opts.grader != "auto" or "similar" in self.used:
                    out.error = out.reason = f"grading failed: {exc}"  # embeddings did work
                    return
                self.use_judge = True  # this embedding model cannot embed: judge from now on
                self.notes.append(f"embeddings unavailable on {self.opts.embedder} ({exc}); "
                                  f"graded with the judge {self.opts.judge}")
        try:
            await self._apply(judge_assertion(replay, reference), "judge", local, out)
        except (EvalCallError, CaseError) as exc:  # no verdict is an error, never agreement
            out.error = out.reason = f"grading failed: {exc}"

    async def _apply(self, assertion: Assertion, kind: str, local: str,
                     out: AuditedCall) -> None:
        verdict = await evaluate([assertion], Output(local), None, self.grader)
        spent = verdict.grading_cost_usd
        out.agree, out.score, out.grader = verdict.passed, verdict.score, kind
        out.reason = verdict.results[0].reason
        out.cost_usd = None if out.cost_usd is None or math.isnan(spent) else (
            out.cost_usd + spent)
        self.used.add(kind)


async def run_audit(replays: list[Replay], broken: list[AuditedCall], opts: AuditOptions,
                    pricing: Pricing, population: int, sample: str, seed: int,
                    estimate: float | None) -> AuditResult:
    """Replay every call (concurrently), then grade; ``broken`` are reported as errors."""
    started = time.perf_counter()
    headers = {"X-Devloop-Feature": AUDIT_FEATURE}
    client = ModelClient(opts.api_base, opts.concurrency, opts.max_retries, opts.timeout_s,
                         opts.backoff_s, headers=headers)
    auditor = Auditor(opts, pricing, client)
    progress = Progress(len(replays), f"audit on {opts.model}", enabled=opts.progress)
    outs = await asyncio.gather(*(auditor.replay(r) for r in replays))
    graded = [(r, o) for r, o in zip(replays, outs, strict=True) if o.error is None]
    for r, o in zip(replays, outs, strict=True):
        if o.error is not None:
            progress.advance(r.call.request_id[:12], "ERROR", 0.0)

    async def grade(replay: Replay, out: AuditedCall) -> None:
        await auditor.grade(replay, out)
        status = "ERROR" if out.error else ("AGREE" if out.agree else "DISAGREE")
        progress.advance(replay.call.request_id[:12], status, out.cost_usd)

    if graded:  # the first alone: in auto mode it settles whether embeddings work
        await grade(*graded[0])
        await asyncio.gather(*(grade(r, o) for r, o in graded[1:]))
    kinds = [k for k in ("similar", "judge") if k in auditor.used]
    calls = sorted([*outs, *broken], key=lambda o: (o.call.ts, o.call.request_id))
    return AuditResult(
        model=opts.model, grader="+".join(kinds) or opts.grader, sample=sample, seed=seed,
        population=population, calls=calls, estimate_usd=estimate,
        seconds=time.perf_counter() - started, retries=client.retries, notes=auditor.notes)


def plan(calls: list[StoredCall]) -> tuple[list[Replay], list[AuditedCall]]:
    """Replays for the stored calls that parse; an error result for any that do not."""
    replays, broken = [], []
    for call in calls:
        try:
            replays.append(replay_of(call))
        except (ValidationError, ValueError) as exc:
            first = str(exc).splitlines()[0]
            broken.append(AuditedCall(call, error=f"stored request is not a chat request: "
                                                  f"{first}", reason="unreadable request"))
    return replays, broken


def total_estimate(replays: list[Replay], opts: AuditOptions, pricing: Pricing
                   ) -> float | None:
    return _add(*(call_estimate(r, opts, pricing) for r in replays))
