"""Metering: usage -> cost -> the ledger row (and its commit) -> metrics and listeners.

Every call ends here: answered (``finish``), answered from the cache (``cache_hit``) or
failed (``failure``). The row is committed before the response completes, together with
the writes that belong to it (the cache row, the settled reservation, stored bodies).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any

from devloop import instrument
from devloop.backends import BackendError
from devloop.config import Profile
from devloop.gateway.admission import Budgets
from devloop.gateway.metrics import Metrics
from devloop.gateway.prepared import CacheStatus, CallResult, Prepared
from devloop.pricing import Pricing
from devloop.store.bodies import body_job
from devloop.store.calls import CallRecord, WriteJob, insert_call_job, saved
from devloop.store.writer import DbWriter
from devloop.tokens import count_tokens
from devloop.types import ChatRequest, Completion, Usage

PREFIX_CHARS = 512  # "leading tokens" for prefix-stability stats: about 128 tokens


def count_usage(req: Any, text: str) -> Usage:
    """Usage counted here (the upstream reported none): marked as not reported."""
    return Usage(count_tokens(req.prompt_text()), count_tokens(text), reported=False)


def prefix_hash(req: Any) -> str:
    return hashlib.sha1(req.prompt_text()[:PREFIX_CHARS].encode()).hexdigest()[:12]


def request_digests(prep: Prepared) -> tuple[str, str]:
    """(prefix_hash, request_hash) of the call's request as it is now, made once per request
    object. The gateway asks for them while the upstream works (on a single call they cost
    35 µs that would otherwise come after the answer); a fallback that replaces the request
    (an output limit) gets its own."""
    made = prep.digests
    if made is None or made[0] is not prep.req:
        made = prep.digests = (prep.req, prefix_hash(prep.req), instrument.request_hash(prep.req))
    return made[1], made[2]


class Meter:
    """Prices a call, writes its ledger row and reports it (metrics, listeners)."""

    def __init__(self, profile: Profile, pricing: Pricing, writer: DbWriter,
                 budgets: Budgets, store: bool = True) -> None:
        self.profile, self.pricing, self.writer, self.budgets = profile, pricing, writer, budgets
        self.store = store  # False: nothing is written (`devloop check --no-store`)
        self.metrics = Metrics()
        self.listeners: list[Callable[[CallRecord], Any]] = []  # the TUI's live view

    count = staticmethod(count_usage)

    async def finish(self, prep: Prepared, tier: str, backend: str, model: str, reason: str,
                     completion: Completion, upstream_ms: float, ttft_ms: float | None = None,
                     stream: bool = False, status: int = 200, error: str | None = None,
                     also: WriteJob | None = None) -> CallResult:
        """An answered (or, mid-stream, broken) call: price it, commit its row."""
        u = completion.usage
        split = self.pricing.tier_split(tier, model, u)  # every cache field at its own rate
        cost = None if split is None else split[0] + split[1]
        cf = self.pricing.counterfactual(u.prompt_tokens, u.completion_tokens)
        rec = self.record(prep, tier, backend, model, reason, prep.cache, u, cost, cf, stream,
                          status, error, ttft_ms, split)
        if status == 200 and self.profile.store_bodies and isinstance(prep.req, ChatRequest):
            also = body_job(rec, prep.req, completion, also)  # same transaction as the row
        await self.write(rec, prep.reservation, also)
        overhead = max(rec.latency_ms - upstream_ms, 0.0)
        return CallResult(prep.ctx.request_id, prep.decision, tier, backend, model, reason,
                          prep.cache, completion, None, cost, cf, rec.saved_usd, overhead)

    async def cache_hit(self, prep: Prepared, completion: Completion,
                        similarity: float | None = None) -> CallResult:
        """A hit saves the full counterfactual and costs nothing."""
        tier = completion.tier or prep.decision.tier  # booked to the tier that produced it
        cf = self.pricing.counterfactual(completion.usage.prompt_tokens,
                                         completion.usage.completion_tokens)
        reason = prep.decision.reason + "; answered from cache"
        rec = self.record(prep, tier, "cache", completion.model, reason, "hit", completion.usage,
                          cost=0.0, counterfactual=cf, stream=prep.req.stream)
        rec.semantic_similarity = similarity
        await self.write(rec, None)
        return CallResult(prep.ctx.request_id, prep.decision, tier, "cache", completion.model,
                          reason, "hit", completion, None, 0.0, cf, cf, rec.latency_ms)

    async def refusal(self, prep: Prepared, backend: str | None, exc: Exception,
                      status: int = 429) -> None:
        """A call refused before it left (budget, rate limit: 429; no allowed tier can honour
        a field: 400): a row at $0 with the status and the reason, so refusals are counted."""
        code = getattr(exc, "code", None) or "refused"
        rec = self.record(prep, prep.decision.tier, backend or "", prep.decision.model,
                          prep.decision.reason, "off" if status == 400 else prep.cache, Usage(),
                          0.0, 0.0, bool(getattr(prep.req, "stream", False)), status,
                          f"{code}: {exc}"[:500])
        await self.write(rec, None)

    async def failure(self, prep: Prepared, tier: str, backend: str, model: str,
                      exc: BackendError) -> None:
        """A refused or failed upstream call is a row too (booked to the tier that refused
        or failed): no tokens, a known $0."""
        rec = self.record(prep, tier, backend, model,
                          prep.decision.reason, prep.cache, Usage(), 0.0,
                          # nothing saved: a known zero keeps spend totals known
                          0.0, bool(getattr(prep.req, "stream", False)), exc.status,
                          str(exc)[:500])
        await self.write(rec, None)

    def record(self, prep: Prepared, tier: str, backend: str, model: str, reason: str,
               cache: CacheStatus, usage: Usage, cost: float | None,
               counterfactual: float | None, stream: bool = False, status: int = 200,
               error: str | None = None, ttft_ms: float | None = None,
               split: tuple[float, float] | None = (0.0, 0.0)) -> CallRecord:
        ctx = prep.ctx
        queue = ctx.queue
        if instrument.is_own(ctx.origin):  # devloop's own traffic: visible, never saved
            counterfactual = cost
        if cache == "hit":  # answered by devloop's cache: no provider-cache tokens this time
            usage = Usage(usage.prompt_tokens, usage.completion_tokens)
        prefix, whole = request_digests(prep)
        return CallRecord(
            ts=time.time(),
            request_id=ctx.request_id, endpoint=ctx.endpoint, tier=tier, backend=backend,
            model=model, route_reason=reason, cache=cache, feature=ctx.feature, user=ctx.user,
            key_id=ctx.key_id, prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens, cached_tokens=usage.cached_tokens,
            tokens_counted=0 if usage.reported else 1,
            latency_ms=(time.perf_counter() - prep.started) * 1000, ttft_ms=ttft_ms,
            stream=int(stream), status=status, error=error, cost_usd=cost,
            counterfactual_usd=counterfactual, saved_usd=saved(cost, counterfactual),
            production_model=self.profile.production_model,
            prefix_hash=prefix,
            queue_position=queue.position if queue is not None else None,
            queue_wait_ms=queue.wait_ms if queue is not None else None,
            session=ctx.session, origin=ctx.origin, request_hash=whole,
            **instrument.ledger_fields(usage, split),
            parent_request_id=prep.parent_request_id,
        )

    async def write(self, rec: CallRecord, reservation: Any = None,
                    also: WriteJob | None = None) -> None:
        """Commit the row (and settle the reservation) before the response completes.

        ``also`` (the cache's own write for this call) joins the same transaction: one
        commit and one writer wake-up per request instead of two.
        """
        if not self.store:
            self.budgets.release(reservation)
            return
        try:
            await self.writer.run(insert_call_job(rec, Budgets.settle_job(reservation), also))
        except asyncio.CancelledError:  # the client left: the writer still commits the row
            self.observe(rec)
            raise
        self.observe(rec)

    def observe(self, rec: CallRecord) -> None:
        """The call's metrics (label values in the order METRICS names them)."""
        m = self.metrics
        tier, key = rec.tier, rec.user
        m.add("devloop_requests_total", (tier, key, rec.cache, str(rec.status)))
        m.add("devloop_tokens_total", (tier, key, "prompt"), rec.prompt_tokens)
        m.add("devloop_tokens_total", (tier, key, "completion"), rec.completion_tokens)
        m.add("devloop_cost_usd_total", (tier, key), rec.cost_usd or 0.0)
        if instrument.is_own(rec.origin):
            m.add("devloop_own_requests_total", (rec.origin,))
        else:  # only what clients sent is ever "saved"
            m.add("devloop_saved_usd_total", (tier, key), rec.saved_usd or 0.0)
        feature = m.feature(rec.feature)
        if rec.cache_read_tokens:
            m.add("devloop_cache_read_tokens_total", (feature, tier), rec.cache_read_tokens)
        if rec.cache_write_tokens:
            m.add("devloop_cache_write_tokens_total",
                  (feature, tier, rec.cache_write_ttl or "5m"), rec.cache_write_tokens)
        if rec.status == 200:
            m.sample("devloop_output_tokens", (feature, tier), rec.completion_tokens)
        m.sample("devloop_request_duration_seconds", (tier,), rec.latency_ms / 1000)
        if rec.cache == "hit":
            m.add("devloop_cache_hits_total", (tier,))
        for listener in self.listeners:
            listener(rec)
