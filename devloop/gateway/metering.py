"""Metering: usage -> cost -> the ledger row (and its commit) -> metrics and listeners.

Every call ends here: answered (``finish``), answered from the cache (``cache_hit``) or
failed (``failure``). The row is committed before the response completes, together with
the writes that belong to it (the cache row, the settled reservation, stored bodies).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from devloop import instrument
from devloop.backends import BackendError
from devloop.config import Profile
from devloop.gateway.admission import Budgets
from devloop.gateway.prepared import CacheStatus, CallResult, Prepared
from devloop.pricing import Pricing
from devloop.store.bodies import body_job
from devloop.store.calls import CallRecord, WriteJob, insert_call_job, saved
from devloop.store.writer import DbWriter
from devloop.tokens import count_tokens
from devloop.types import ChatRequest, Completion, Usage

PREFIX_CHARS = 512  # "leading tokens" for prefix-stability stats: about 128 tokens
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what generate_latest writes
MAX_FEATURE_LABELS = 50  # distinct feature label values; later features report as "other"
OUTPUT_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    120.0)
# name -> (kind, help, label names). The names and labels are what dashboards and tests use.
METRICS: dict[str, tuple[type[Any], str, tuple[str, ...]]] = {
    "devloop_requests_total": (Counter, "Calls handled, by tier, key, cache status and status",
                               ("tier", "key", "cache", "status")),
    "devloop_tokens_total": (Counter, "Tokens, by tier, key and direction",
                             ("tier", "key", "direction")),
    "devloop_cost_usd_total": (Counter, "Actual spend in USD, by tier and key", ("tier", "key")),
    # A gauge: a call on a pricier model than the production one saves a negative amount.
    "devloop_saved_usd_total": (Gauge, "Saved spend in USD against the production model",
                                ("tier", "key")),
    "devloop_cache_hits_total": (Counter, "Responses served from the cache", ("tier",)),
    "devloop_queued_requests_total": (Counter, "Team requests that had to wait for a slot, by key",
                                      ("key",)),
    "devloop_queue_rejected_total": (Counter, "Team requests refused before queueing, by key and "
                                     "reason", ("key", "reason")),
    "devloop_queue_abandoned_total": (Counter, "Team requests whose client left while queued",
                                      ("key",)),
    "devloop_auth_failures_total": (Counter, "Team requests refused with 401, by reason",
                                    ("reason",)),
    "devloop_in_flight": (Gauge, "Requests in flight", ()),
    "devloop_queue_depth": (Gauge, "Requests waiting in the team queue, by key", ("key",)),
    "devloop_upstream_slots_in_use": (Gauge, "Team slots in use (requests admitted to upstream)",
                                      ()),
    "devloop_upstream_slots": (Gauge, "Team cap on requests in flight to the upstream", ()),
    "devloop_team_keys_active": (Gauge, "Active (not revoked) team keys", ()),
    "devloop_request_duration_seconds": (Histogram, "Call latency, by tier", ("tier",)),
    # Provider prompt caching and output sizes, by feature (bounded: MAX_FEATURE_LABELS)
    "devloop_cache_read_tokens_total": (Counter, "Provider-cache read tokens, by feature and tier",
                                        ("feature", "tier")),
    "devloop_cache_write_tokens_total": (Counter, "Provider-cache write tokens, by feature, tier "
                                         "and TTL", ("feature", "tier", "ttl")),
    "devloop_output_tokens": (Histogram, "Output tokens per answered call, by feature and tier",
                              ("feature", "tier")),
    "devloop_own_requests_total": (Counter, "devloop's own calls (check, eval, judge, probe), "
                                   "never counted as saved", ("origin",)),
    # Its _sum is the total wait by key (what devloop_queue_wait_seconds_total once counted).
    "devloop_queue_wait_seconds": (Histogram, "Wait in the team queue before a slot, by key",
                                   ("key",)),
}


class Metrics:
    """The gateway's Prometheus metrics, in a registry of its own (several gateways can run
    in one process). Label children are cached: ``labels()`` costs ~8 us, a lookup ~0.1 us."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._metrics: dict[str, Any] = {}
        for name, (kind, text, labels) in METRICS.items():
            buckets = OUTPUT_BUCKETS if name == "devloop_output_tokens" else DURATION_BUCKETS
            extra = {"buckets": buckets} if kind is Histogram else {}
            self._metrics[name] = kind(name, text, labels, registry=self.registry, **extra)
        self._children: dict[tuple[Any, ...], Any] = {}
        self._features: set[str] = set()

    def feature(self, name: str | None) -> str:
        """A bounded label value: the first MAX_FEATURE_LABELS features, then "other"."""
        label = name or "(none)"
        if label in self._features or len(self._features) < MAX_FEATURE_LABELS:
            self._features.add(label)
            return label
        return "other"

    def _child(self, name: str, labels: dict[str, str | None]) -> Any:
        key = (name, *labels.items())
        child = self._children.get(key)
        if child is None:
            metric = self._metrics[name]
            child = metric.labels(**{k: v or "" for k, v in labels.items()}) if labels else metric
            self._children[key] = child
        return child

    def inc(self, name: str, value: float = 1.0, **labels: str | None) -> None:
        self._child(name, labels).inc(value)

    def set(self, name: str, value: float, **labels: str | None) -> None:
        self._child(name, labels).set(value)

    def observe(self, name: str, value: float, **labels: str | None) -> None:
        self._child(name, labels).observe(value)

    def track(self, name: str, read: Callable[[], float]) -> None:
        """A gauge without labels that reads its value when scraped."""
        self._metrics[name].set_function(read)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def count_usage(req: Any, text: str) -> Usage:
    """Usage counted here (the upstream reported none): marked as not reported."""
    return Usage(count_tokens(req.prompt_text()), count_tokens(text), reported=False)


def prefix_hash(req: Any) -> str:
    return hashlib.sha1(req.prompt_text()[:PREFIX_CHARS].encode()).hexdigest()[:12]


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
            prefix_hash=prefix_hash(prep.req),
            queue_position=queue.position if queue is not None else None,
            queue_wait_ms=queue.wait_ms if queue is not None else None,
            session=ctx.session, origin=ctx.origin, request_hash=instrument.request_hash(prep.req),
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
        await self.writer.run(insert_call_job(rec, Budgets.settle_job(reservation), also))
        self.observe(rec)

    def observe(self, rec: CallRecord) -> None:
        m = self.metrics
        tier, key = rec.tier, rec.user
        m.inc("devloop_requests_total", tier=tier, key=key, cache=rec.cache,
              status=str(rec.status))
        m.inc("devloop_tokens_total", rec.prompt_tokens, tier=tier, key=key, direction="prompt")
        m.inc("devloop_tokens_total", rec.completion_tokens, tier=tier, key=key,
              direction="completion")
        m.inc("devloop_cost_usd_total", rec.cost_usd or 0.0, tier=tier, key=key)
        if instrument.is_own(rec.origin):
            m.inc("devloop_own_requests_total", origin=rec.origin)
        else:  # only what clients sent is ever "saved"
            m.inc("devloop_saved_usd_total", rec.saved_usd or 0.0, tier=tier, key=key)
        feature = m.feature(rec.feature)
        if rec.cache_read_tokens:
            m.inc("devloop_cache_read_tokens_total", rec.cache_read_tokens, feature=feature,
                  tier=tier)
        if rec.cache_write_tokens:
            m.inc("devloop_cache_write_tokens_total", rec.cache_write_tokens, feature=feature,
                  tier=tier, ttl=rec.cache_write_ttl or "5m")
        if rec.status == 200:
            m.observe("devloop_output_tokens", rec.completion_tokens, feature=feature, tier=tier)
        m.observe("devloop_request_duration_seconds", rec.latency_ms / 1000, tier=tier)
        if rec.cache == "hit":
            m.inc("devloop_cache_hits_total", tier=tier)
        for listener in self.listeners:
            listener(rec)
