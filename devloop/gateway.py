"""The gateway: route, cache, budget, call, meter. The HTTP layer and the CLI both use it.

One ``Gateway`` per process holds the shared pieces (router and its backend clients, the
DB writer, the cache, budgets, metrics); every call goes through ``call`` or ``stream``.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from devloop.backends import Backend, BackendError
from devloop.budgets import (
    WORST_CASE_OUTPUT_TOKENS,
    BudgetExceeded,
    Budgets,
    Reservation,
    worst_case_prompt_tokens,
)
from devloop.cache import ResponseCache, cache_key
from devloop.config import Profile, Settings
from devloop.metrics import Metrics
from devloop.pricing import Pricing
from devloop.routing.classifier import ModelClassifier, needs_verdict
from devloop.routing.policy import PolicyInput, decide
from devloop.routing.router import Router
from devloop.store.bodies import body_job
from devloop.store.db import connect
from devloop.store.ledger import CallRecord, saved
from devloop.store.writer import DbWriter
from devloop.tokens import count_tokens, estimate_tokens
from devloop.types import (
    ChatRequest,
    Completion,
    CompletionRequest,
    Delta,
    EmbeddingRequest,
    Embeddings,
    RequestContext,
    RouteDecision,
    Usage,
)

log = logging.getLogger("devloop.gateway")
TextRequest = ChatRequest | CompletionRequest
CacheStatus = Literal["hit", "miss", "bypass", "off"]
PREFIX_CHARS = 512  # "leading tokens" for prefix-stability stats: about 128 tokens
# The ledger insert, built once: CallRecord.row() (dataclasses.asdict) cost ~30 us a call.
CALL_COLUMNS = tuple(f.name for f in fields(CallRecord))
TS_COLUMN = CALL_COLUMNS.index("ts")
INSERT_CALL = (f"INSERT INTO calls ({', '.join(f'[{c}]' for c in CALL_COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(CALL_COLUMNS))})")
WriteJob = Callable[[sqlite3.Connection], Any]


@dataclass(slots=True)
class CallResult:
    request_id: str
    decision: RouteDecision
    tier: str
    backend: str
    model: str
    reason: str
    cache: CacheStatus
    completion: Completion | None = None
    embeddings: Embeddings | None = None
    cost_usd: float | None = 0.0
    counterfactual_usd: float | None = None
    saved_usd: float | None = None
    overhead_ms: float = 0.0


@dataclass(slots=True)
class Prepared:
    req: Any
    ctx: RequestContext
    decision: RouteDecision
    key: str | None
    cache: CacheStatus
    started: float
    reservation: Reservation | None = None
    rate_scopes: list[str] = field(default_factory=list)


class Gateway:
    def __init__(self, settings: Settings, profile: Profile) -> None:
        self.settings = settings
        self.profile = profile
        settings.ensure_home()
        self.writer = DbWriter(settings.db_path)
        self.read_conn: sqlite3.Connection = connect(settings.db_path)
        self.router = Router(profile, settings)
        self.pricing = Pricing(profile)
        self.cache = ResponseCache(profile.cache, self.writer, self.read_conn)
        self.budgets = Budgets(profile, self.writer)
        self.classifier = ModelClassifier(profile, self.router)
        if profile.cache.enabled and profile.cache.semantic:
            from devloop.semantic_cache import SemanticCache  # numpy only when asked for

            self.cache.semantic = SemanticCache(profile.cache, self.router)
        self.metrics = Metrics()
        self.in_flight = 0
        self.listeners: list[Any] = []  # callables(CallRecord) for the TUI's live view
        self._forward: Any = None  # ContextVar of headers for openai upstreams (a team devloop)
        if any(b.kind == "openai" for b in self.router.backends.values()):
            from devloop.backends.openai_compat import FORWARD_HEADERS  # imported by the router

            self._forward = FORWARD_HEADERS

    async def start(self, probe: bool = True) -> None:
        await self.router.start(probe=probe)

    async def close(self) -> None:
        await self.router.close()
        self.writer.close()
        self.read_conn.close()

    # -- deciding ---------------------------------------------------------------------------
    async def verdict(self, req: TextRequest, ctx: RequestContext) -> str | None:
        """`classifier: model`: the local model's simple/complex call, when routing needs it."""
        if not needs_verdict(self.profile, req.model, ctx.forced_tier):
            return None
        return await self.classifier.verdict(req.prompt_text())

    def prepare(self, req: TextRequest | EmbeddingRequest, ctx: RequestContext,
                complexity: str | None = None) -> Prepared:
        started = time.perf_counter()
        if self._forward is not None:  # an upstream devloop books the call under the same names
            self._forward.set({"X-Request-Id": ctx.request_id,
                               **({"X-Devloop-Feature": ctx.feature} if ctx.feature else {})})
        prompt = req.prompt_text()
        decision = decide(
            PolicyInput(ctx.endpoint, req.model, prompt, estimate_tokens(prompt), ctx.feature,
                        ctx.forced_tier, complexity),
            self.profile, self.router.state(),
        )
        if not isinstance(req, EmbeddingRequest):
            req = self._discipline(req, decision)
        status: CacheStatus = "off"
        key = None
        if ctx.cache_mode in ("bypass",):
            status = "bypass"
        elif isinstance(req, EmbeddingRequest) or self.cache.eligible(req.temperature):
            key = cache_key(self.profile.cache.namespace, ctx.endpoint, decision.tier,
                            decision.model, req,
                            None if isinstance(req, EmbeddingRequest) else req.token_limit())
            status = "bypass" if ctx.cache_mode == "refresh" else "miss"
        return Prepared(req, ctx, decision, key, status, started)

    async def _similar(self, prep: Prepared) -> Any:
        """The semantic cache's closest earlier answer, when `cache.semantic` is on."""
        if self.cache.semantic is None or prep.key is None:
            return None
        return await self.cache.semantic.get(prep.key, prep.ctx.endpoint, prep.decision.tier,
                                             prep.decision.model, prep.req)

    @staticmethod
    def _discipline(req: TextRequest, decision: RouteDecision) -> TextRequest:
        """Per-route output limits: a default for requests that set none, and a cap."""
        limit = req.token_limit()
        new = limit if limit is not None else decision.default_max_tokens
        if decision.max_tokens_cap is not None and new is not None:
            new = min(new, decision.max_tokens_cap)
        elif decision.max_tokens_cap is not None:
            new = decision.max_tokens_cap
        if new == limit:
            return req
        update: dict[str, Any] = {"max_tokens": new}
        if isinstance(req, ChatRequest) and req.max_completion_tokens is not None:
            update["max_completion_tokens"] = new
        return req.model_copy(update=update)

    # -- unary calls ------------------------------------------------------------------------
    async def call(self, req: TextRequest, ctx: RequestContext) -> CallResult:
        prep = self.prepare(req, ctx, await self.verdict(req, ctx))
        if prep.key and prep.cache == "miss":
            hit = self.cache.get(prep.key, count_hit=False) or await self._similar(prep)
            if hit is not None:
                return await self._cache_hit(prep, hit.completion)
        chat = isinstance(prep.req, ChatRequest)
        await self._admit(prep, prep.decision.tier)
        upstream_ms = 0.0

        async def attempt(backend: Backend, model: str) -> Completion:
            nonlocal upstream_ms
            await self._admit_fallback(prep, backend.tier)
            t = time.perf_counter()
            try:
                return await (backend.chat(prep.req, model) if chat
                              else backend.complete(prep.req, model))
            finally:
                upstream_ms += (time.perf_counter() - t) * 1000

        self.in_flight += 1
        try:
            completion, tier, note = await self.router.run(prep.decision, attempt)
        except BackendError as exc:
            await self._record_failure(prep, exc)
            raise
        finally:
            self.in_flight -= 1
            self.budgets.release_rate(prep.rate_scopes)
        if not completion.usage.reported or not completion.usage.total_tokens:
            completion.usage = self._count(prep.req, completion.text)
        cache_row = self.cache.put(prep.key, completion, defer=True) if prep.key else None
        result = await self._finish(prep, tier, note, completion, upstream_ms, also=cache_row)
        return result

    async def embed(self, req: EmbeddingRequest, ctx: RequestContext) -> CallResult:
        prep = self.prepare(req, ctx)
        texts = req.texts()
        await self._admit(prep, prep.decision.tier)
        upstream_ms = 0.0

        async def attempt(backend: Backend, model: str) -> Embeddings:
            nonlocal upstream_ms
            t = time.perf_counter()
            try:
                return await backend.embed(texts, model)
            finally:
                upstream_ms += (time.perf_counter() - t) * 1000

        try:
            emb, tier, note = await self.router.run(prep.decision, attempt)
        except BackendError as exc:
            await self._record_failure(prep, exc)
            raise
        finally:
            self.budgets.release_rate(prep.rate_scopes)
        if not emb.usage.prompt_tokens:
            emb.usage = Usage(sum(count_tokens(t) for t in texts), 0, reported=False)
        fake = Completion("", emb.model, "stop", emb.usage)
        result = await self._finish(prep, tier, note, fake, upstream_ms)
        result.embeddings, result.completion = emb, None
        return result

    # -- streams --------------------------------------------------------------------------------
    async def stream(self, req: TextRequest, ctx: RequestContext) -> StreamCall:
        """Route and open the stream; fallbacks happen before the first piece is sent."""
        prep = self.prepare(req, ctx, await self.verdict(req, ctx))
        if prep.key and prep.cache == "miss":
            hit = self.cache.get(prep.key, count_hit=False) or await self._similar(prep)
            if hit is not None:
                result = await self._cache_hit(prep, hit.completion)
                return StreamCall(self, prep, result.tier, "cache", result.reason, replay=result)
        await self._admit(prep, prep.decision.tier)
        chat = isinstance(prep.req, ChatRequest)
        self.in_flight += 1

        async def attempt(backend: Backend, model: str) -> tuple[AsyncIterator[Delta], Delta]:
            await self._admit_fallback(prep, backend.tier)
            it = (backend.chat_stream(prep.req, model) if chat
                  else backend.complete_stream(prep.req, model)).__aiter__()
            first = await it.__anext__()  # connection errors surface here, before headers
            return it, first

        try:
            (it, first), tier, note = await self.router.run(prep.decision, attempt)
        except BackendError as exc:
            self.in_flight -= 1
            self.budgets.release_rate(prep.rate_scopes)
            await self._record_failure(prep, exc)
            raise
        except StopAsyncIteration:
            self.in_flight -= 1
            self.budgets.release_rate(prep.rate_scopes)
            raise BackendError("upstream stream was empty") from None
        return StreamCall(self, prep, tier, self.router.backends[tier].kind,
                          prep.decision.reason + note, it=it, first=first)

    # -- shared steps -----------------------------------------------------------------------
    async def _admit(self, prep: Prepared, tier: str) -> None:
        ctx = prep.ctx
        scopes = ["global", f"tier:{tier}"]
        if ctx.feature:
            scopes.append(f"feature:{ctx.feature}")
        if ctx.key_id:
            scopes.append(f"key:{ctx.key_id}")
        self.budgets.acquire_rate(scopes)
        prep.rate_scopes = scopes
        try:
            await self._reserve(prep, tier)
        except BudgetExceeded:
            self.budgets.release_rate(scopes)
            raise

    async def _admit_fallback(self, prep: Prepared, tier: str) -> None:
        if tier != prep.decision.tier and prep.reservation is None:
            await self._reserve(prep, tier)

    async def _reserve(self, prep: Prepared, tier: str) -> None:
        if not self.budgets.applicable(tier, prep.ctx.feature, prep.ctx.key_id):
            return
        model = self.profile.tiers[tier].model if tier != prep.decision.tier else prep.decision.model
        embedding = isinstance(prep.req, EmbeddingRequest)
        limit = 0 if embedding else prep.req.token_limit() or WORST_CASE_OUTPUT_TOKENS
        worst = self.pricing.tier_cost(tier, model, worst_case_prompt_tokens(prep.req), limit)
        if worst is None:  # a hard stop cannot hold for a call whose price is unknown
            raise BudgetExceeded(
                f"budget applies to tier {tier} but {model!r} has no known price; add it under "
                f"`prices` in the profile", 3600)
        if worst == 0:
            return
        prep.reservation = await self.budgets.reserve(tier, prep.ctx.feature, prep.ctx.key_id,
                                                      worst)

    def _count(self, req: Any, text: str) -> Usage:
        return Usage(count_tokens(req.prompt_text()), count_tokens(text), reported=False)

    def _prefix_hash(self, req: Any) -> str:
        return hashlib.sha1(req.prompt_text()[:PREFIX_CHARS].encode()).hexdigest()[:12]

    async def _cache_hit(self, prep: Prepared, completion: Completion) -> CallResult:
        tier = prep.decision.tier
        cf = self.pricing.counterfactual(completion.usage.prompt_tokens,
                                         completion.usage.completion_tokens)
        reason = prep.decision.reason + "; answered from cache"
        rec = self._record(prep, tier, "cache", completion.model, reason, "hit", completion.usage,
                           cost=0.0, counterfactual=cf, stream=prep.req.stream)
        await self._write(rec, None, self.cache.hit_job(prep.key) if prep.key else None)
        return CallResult(prep.ctx.request_id, prep.decision, tier, "cache", completion.model,
                          reason, "hit", completion, None, 0.0, cf, cf, rec.latency_ms)

    async def _finish(self, prep: Prepared, tier: str, note: str, completion: Completion,
                      upstream_ms: float, ttft_ms: float | None = None, stream: bool = False,
                      status: int = 200, error: str | None = None, also: WriteJob | None = None
                      ) -> CallResult:
        u = completion.usage
        model = self.router.model_for(tier, prep.decision)
        cost = self.pricing.tier_cost(tier, model, u.prompt_tokens, u.completion_tokens,
                                      u.cached_tokens)
        cf = self.pricing.counterfactual(u.prompt_tokens, u.completion_tokens)
        backend = self.router.backends[tier].kind
        reason = prep.decision.reason + note
        rec = self._record(prep, tier, backend, model, reason, prep.cache, u, cost, cf, stream,
                           status, error, ttft_ms)
        if status == 200 and self.profile.store_bodies and isinstance(prep.req, ChatRequest):
            also = body_job(rec, prep.req, completion, also)  # same transaction as the row
        await self._write(rec, prep.reservation, also)
        overhead = max(rec.latency_ms - upstream_ms, 0.0)
        return CallResult(prep.ctx.request_id, prep.decision, tier, backend, model, reason,
                          prep.cache, completion, None, cost, cf, rec.saved_usd, overhead)

    def _record(self, prep: Prepared, tier: str, backend: str, model: str, reason: str,
                cache: CacheStatus, usage: Usage, cost: float | None,
                counterfactual: float | None, stream: bool = False, status: int = 200,
                error: str | None = None, ttft_ms: float | None = None) -> CallRecord:
        ctx = prep.ctx
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
            prefix_hash=self._prefix_hash(prep.req),
            queue_position=ctx.headers.get("queue_position"),  # type: ignore[arg-type]
            queue_wait_ms=ctx.headers.get("queue_wait_ms"),  # type: ignore[arg-type]
        )

    async def _write(self, rec: CallRecord, reservation: Reservation | None,
                     also: WriteJob | None = None) -> None:
        """Commit the row (and settle the reservation) before the response completes.

        ``also`` (the cache's own write for this call) joins the same transaction: one
        commit and one writer wake-up per request instead of two.
        """
        values = [getattr(rec, c) for c in CALL_COLUMNS]
        values[TS_COLUMN] = rec.ts or time.time()  # as CallRecord.row() sets it
        settle = Budgets.settle_sql(reservation)

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(INSERT_CALL, values)
            if settle:
                conn.execute(*settle)
            if also is not None:
                also(conn)

        await self.writer.run(job)
        self._observe(rec)

    def _observe(self, rec: CallRecord) -> None:
        m = self.metrics
        labels = {"tier": rec.tier, "key": rec.user}
        m.inc("devloop_requests_total", cache=rec.cache, status=str(rec.status), **labels)
        m.inc("devloop_tokens_total", rec.prompt_tokens, direction="prompt", **labels)
        m.inc("devloop_tokens_total", rec.completion_tokens, direction="completion", **labels)
        m.inc("devloop_cost_usd_total", rec.cost_usd or 0.0, **labels)
        m.inc("devloop_saved_usd_total", rec.saved_usd or 0.0, **labels)
        m.observe("devloop_request_duration_seconds", rec.latency_ms / 1000, tier=rec.tier)
        if rec.cache == "hit":
            m.inc("devloop_cache_hits_total", tier=rec.tier)
        if rec.queue_wait_ms:
            m.inc("devloop_queue_wait_seconds_total", rec.queue_wait_ms / 1000, key=rec.user)
        for listener in self.listeners:
            listener(rec)

    async def _record_failure(self, prep: Prepared, exc: BackendError) -> None:
        self.budgets.release(prep.reservation)
        rec = self._record(prep, prep.decision.tier, self.router.backends[prep.decision.tier].kind,
                           prep.decision.model, prep.decision.reason, prep.cache, Usage(), 0.0,
                           # no tokens, nothing saved: a known zero keeps spend totals known
                           0.0, bool(getattr(prep.req, "stream", False)), exc.status,
                           str(exc)[:500])
        await self._write(rec, None)


class StreamCall:
    """An open stream: iterate it for deltas; the ledger row is written before it ends."""

    def __init__(self, gw: Gateway, prep: Prepared, tier: str, backend: str, reason: str,
                 it: AsyncIterator[Delta] | None = None, first: Delta | None = None,
                 replay: CallResult | None = None) -> None:
        self.gw, self.prep, self.tier, self.backend, self.reason = gw, prep, tier, backend, reason
        self.request_id = prep.ctx.request_id
        self.cache: CacheStatus = "hit" if replay else prep.cache
        self.model = replay.model if replay else gw.router.model_for(tier, prep.decision)
        self.result: CallResult | None = replay
        self._it, self._first, self._replay = it, first, replay
        self.usage: Usage | None = None
        self.error: BackendError | None = None

    async def deltas(self) -> AsyncIterator[Delta]:
        if self._replay is not None:
            c = self._replay.completion
            assert c is not None
            yield Delta(text=c.text, tool_calls=c.tool_calls)
            self.usage = c.usage
            yield Delta(finish_reason=c.finish_reason, usage=c.usage)
            return
        gw, prep = self.gw, self.prep
        assert self._it is not None and self._first is not None
        ttft = (time.perf_counter() - prep.started) * 1000
        parts: list[str] = []
        finish, usage, status, error = "stop", None, 200, None
        try:
            pending: Delta | None = self._first
            while pending is not None:
                if pending.text:
                    parts.append(pending.text)
                if pending.usage is not None:
                    usage = pending.usage
                if pending.finish_reason:
                    finish = pending.finish_reason
                if pending.finish_reason is None:
                    yield pending
                try:
                    pending = await self._it.__anext__()
                except StopAsyncIteration:
                    pending = None
        except BackendError as exc:
            status, error, self.error = 502, str(exc)[:500], exc
            gw.router.mark_failure(self.tier, exc)
        except BaseException:
            status, error = 499, "client disconnected"  # the server closed us mid-stream
            raise
        finally:
            gw.in_flight -= 1
            gw.budgets.release_rate(prep.rate_scopes)
            text = "".join(parts)
            if usage is None or not usage.total_tokens:
                usage = gw._count(prep.req, text)
            self.usage = usage
            completion = Completion(text, self.model, finish, usage)
            cache_row = (gw.cache.put(prep.key, completion, defer=True)
                         if status == 200 and prep.key else None)
            self.result = await gw._finish(prep, self.tier, self.reason[len(prep.decision.reason):],
                                           completion, 0.0, ttft, True, status, error, cache_row)
        if self.error is not None:
            raise self.error
        yield Delta(finish_reason=finish, usage=usage)
