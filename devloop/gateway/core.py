"""The gateway: prepare (route + cache key), admit, call, meter. HTTP and the CLI use it.

One ``Gateway`` per process holds the shared pieces (router and its backend clients, the
DB writer, the cache, admission, metering); every call goes through ``call``, ``stream``
or ``embed``. A call passes the stages in order:

1. ``prepare``: routing decision, per-route token limits, cache key (this module);
2. the exact cache, then the semantic cache (devloop/cache.py, devloop/semantic_cache.py);
3. admission: rate limits and budget reservations (admission.py);
4. the upstream, with fallbacks (devloop/routing/router.py, devloop/backends/);
5. metering: cost, the ledger row, metrics (metering.py); streams through stream.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from devloop import instrument
from devloop.audit.sampler import Auditor
from devloop.backends import Backend, BackendError
from devloop.cache import ResponseCache, cache_key
from devloop.config import Profile, Settings
from devloop.gateway.admission import Admission, BudgetExceeded, Budgets
from devloop.gateway.metering import Meter, request_digests
from devloop.gateway.metrics import Metrics
from devloop.gateway.prepared import CacheStatus, CallResult, Prepared
from devloop.gateway.priority import PriorityGate
from devloop.gateway.stream import StreamCall
from devloop.pricing import Pricing
from devloop.routing.capabilities import CapabilityError
from devloop.routing.cascade import AnswerCheck, run_cascade
from devloop.routing.classifier import ModelClassifier, needs_model_verdict
from devloop.routing.policy import PolicyInput, apply_token_limits, decide
from devloop.routing.router import Router
from devloop.store.db import connect
from devloop.store.writer import DbWriter
from devloop.tokens import count_tokens, estimate_tokens
from devloop.types import (
    ChatRequest,
    Completion,
    Delta,
    EmbeddingRequest,
    Embeddings,
    RequestContext,
    TextRequest,
    Usage,
)

log = logging.getLogger("devloop.gateway")


def without_optional_tools(req: ChatRequest) -> ChatRequest:
    """``req`` without the tools a model was free not to call (tool_choice auto or unset)."""
    return req.model_copy(update=dict.fromkeys(("tools", "tool_choice", "parallel_tool_calls")))


class Gateway:
    def __init__(self, settings: Settings, profile: Profile, store: bool = True) -> None:
        self.settings = settings
        self.profile = profile
        settings.ensure_home()
        self.writer = DbWriter(settings.db_path)
        self.read_conn = connect(settings.db_path)
        self.router = Router(profile, settings.ollama_probe_timeout, settings)
        self.pricing = Pricing(profile)
        self.cache = ResponseCache(profile.cache, self.writer, self.read_conn)
        self.budgets = Budgets(profile, self.writer, settings.zone())
        self.admission = Admission(profile, self.pricing, self.budgets)
        # store=False (`devloop check --no-store`): no ledger rows, no cache rows
        self.meter = Meter(profile, self.pricing, self.writer, self.budgets, store=store)
        self.classifier = ModelClassifier(profile, self.router)
        self.auditor = Auditor(self)  # judge sampling (devloop/audit/); inert without `audit:`
        self.alerts: Any = None  # the AlertScheduler, when a server runs one (its gauges)
        self.priority = PriorityGate.from_profile(profile)
        if profile.cache.enabled and profile.cache.semantic:
            from devloop.semantic_cache import SemanticCache  # numpy only when asked for

            self.cache.semantic = SemanticCache(profile.cache, self.embed_for_cache,
                                                writer=self.writer, conn=self.read_conn)
        self.in_flight = 0
        self.meter.metrics.track("devloop_in_flight", lambda: self.in_flight)
        # An OpenAI-compatible upstream (often a team devloop) gets the request id and feature.
        self._forwards = any(b.kind == "openai" for b in self.router.backends.values())

    @property
    def metrics(self) -> Metrics:
        return self.meter.metrics

    @property
    def listeners(self) -> list[Any]:
        """Callables(CallRecord), called after each ledger row is committed (the TUI)."""
        return self.meter.listeners

    async def start(self, probe: bool = True) -> None:
        await self.router.start(probe=probe)

    async def close(self) -> None:
        await self.router.close()
        self.writer.close()
        self.read_conn.close()

    # -- deciding ---------------------------------------------------------------------------
    async def model_complexity(self, req: TextRequest, ctx: RequestContext) -> str | None:
        """`classifier: model`: the local model's low/high call, when routing needs it."""
        if not needs_model_verdict(self.profile, req.model, ctx.forced_tier):
            return None
        return await self.classifier.complexity(req.prompt_text())

    def prepare(self, req: TextRequest | EmbeddingRequest, ctx: RequestContext,
                complexity: str | None = None) -> Prepared:
        started = time.perf_counter()
        if ctx.user is None and getattr(req, "user", None):
            ctx.user = req.user  # the OpenAI `user` field: attribution and `user:` budgets
        prompt = req.prompt_text()
        tokens = estimate_tokens(prompt)
        decision = decide(
            PolicyInput(ctx.endpoint, req.model, prompt, tokens, ctx.feature,
                        ctx.forced_tier, complexity),
            self.profile, self.router.state(),
        )
        # Tiers that cannot honour a field are routed around (or the call is refused).
        try:
            decision = self.router.capable(decision, req, tokens * 3 // 4)
        except CapabilityError as exc:  # booked as a refused call of the tier that refused
            exc.prepared = Prepared(req, ctx, decision, None, "off", started)  # type: ignore[attr-defined]
            raise
        if decision.ignored and isinstance(req, ChatRequest):  # said in X-Devloop-Ignored
            req = without_optional_tools(req)
        if not isinstance(req, EmbeddingRequest):
            req = apply_token_limits(req, decision)
            if instrument.is_paid(decision.tier, decision.model, self.pricing):
                req = instrument.with_output_limit(req, self.profile, decision)  # a hard stop
        status: CacheStatus = "off"
        key = key_for = None
        if ctx.cache_mode in ("bypass",):
            status = "bypass"
        elif isinstance(req, EmbeddingRequest) or self.cache.eligible(req.temperature):
            # Looked up for the tier that would serve now: an answer is reused only for the
            # tier and model that produced it (it is stored under the tier that served).
            tier = self.router.candidates(decision)[0]
            key_for = (tier, self.router.model_for(tier, decision))
            key = self._cache_key(req, ctx, *key_for)
            status = "bypass" if ctx.cache_mode == "refresh" else "miss"
        forward = None
        if self._forwards:  # an upstream devloop books the call under the same names
            forward = {"X-Request-Id": ctx.request_id}
            if ctx.feature:
                forward["X-Devloop-Feature"] = ctx.feature
        return Prepared(req, ctx, decision, key, status, started, key_for,
                        forward_headers=forward)

    async def _prepare(self, req: TextRequest | EmbeddingRequest, ctx: RequestContext,
                       complexity: str | None = None) -> Prepared:
        """``prepare``, after capability discovery; a capability refusal is a ledger row."""
        await self.router.discovered()
        try:
            return self.prepare(req, ctx, complexity)
        except CapabilityError as exc:
            prep = getattr(exc, "prepared", None)
            if prep is not None:
                await self.meter.refusal(prep, self.router.backends[prep.decision.tier].kind,
                                         exc, status=400)
            raise

    def _cache_key(self, req: Any, ctx: RequestContext, tier: str, model: str) -> str:
        return cache_key(self.profile.cache.namespace, ctx.endpoint, tier, model, req,
                         None if isinstance(req, EmbeddingRequest) else req.token_limit())

    def served_key(self, prep: Prepared, tier: str) -> str | None:
        """The cache key of the answer a tier served (None: not cached)."""
        if prep.key is None:
            return None
        model = self.router.model_for(tier, prep.decision)
        if prep.key_for == (tier, model):  # the tier the key was looked up for: the same key
            return prep.key
        return self._cache_key(prep.req, prep.ctx, tier, model)

    async def _admit(self, prep: Prepared) -> None:
        """Admission for the routed tier; a refusal (budget, rate limit) is a ledger row."""
        try:
            await self.admission.admit(prep, prep.decision.tier)
        except BudgetExceeded as exc:
            await self.meter.refusal(prep, self._kind(prep.decision.tier), exc)
            raise

    def _kind(self, tier: str) -> str | None:
        backend = self.router.backends.get(tier)
        return backend.kind if backend is not None else None

    def _outgoing(self, prep: Prepared, backend: Backend, model: str) -> Any:
        """The request as sent to ``backend``: cache breakpoints where the provider needs them;
        for a fallback that cannot call tools (``decision.text_only``), without the tools the
        client left to the model's choice, said in ``X-Devloop-Ignored`` and the reason."""
        req, decision = prep.req, prep.decision
        if backend.tier in decision.text_only and isinstance(req, ChatRequest):
            req = without_optional_tools(req)
            decision.ignored = ["tools"]
            decision.reason += (f"; tools not offered to {backend.tier}: it cannot call tools "
                                f"(tool_choice auto), answered as text")
        return instrument.for_provider(req, backend.kind, model, self.profile, self.pricing)

    def release(self, prep: Prepared) -> None:
        """A call that was admitted has ended: it no longer counts in flight or in rate limits."""
        self.in_flight -= 1
        self.admission.release_rate(prep)
        if prep.priority_tier is not None:
            self.priority.leave(prep.priority_tier)
            prep.priority_tier = None

    def stream_done(self, prep: Prepared) -> None:
        """A live stream's ledger row is committed (or it failed before a row was owed): it
        no longer counts as open for the writer (``DbWriter.stream_opened``)."""
        if prep.streaming:
            prep.streaming = False
            self.writer.stream_closed()

    # -- the caches -------------------------------------------------------------------------
    async def _cached(self, prep: Prepared) -> CallResult | None:
        """An earlier answer (exact, else semantic when configured), metered as a hit."""
        if not prep.key or prep.cache != "miss":
            return None
        hit = self.cache.get(prep.key)
        if hit is not None:
            return await self.meter.cache_hit(prep, hit.completion)
        if self.cache.semantic is None:
            return None
        similar = await self.cache.semantic.get(prep.key, prep.ctx.endpoint, prep.decision.tier,
                                                prep.decision.model, prep.req, prep.ctx.feature)
        if similar is None:
            return None
        prep.decision = dataclasses.replace(  # the matched entry, for the ledger row
            prep.decision, reason=f"{prep.decision.reason}; semantic match {similar.key[:16]} "
                                  f"(similarity {similar.similarity:.3f})")
        served = await self.meter.cache_hit(prep, similar.completion,
                                            similar.similarity)
        await self.auditor.after_call(prep, served, semantic=True)  # its false-positive rate
        return served

    async def embed_for_cache(self, text: str) -> list[float] | None:
        """The semantic cache's embedder: the local tier, else the embedded one."""
        for tier in ("local", "embedded"):
            backend = self.router.backends.get(tier)
            if backend is None or self.router.is_down(tier):
                continue
            try:
                result = await backend.embed([text], backend.default_model)
            except BackendError as exc:
                log.info("semantic cache: %s cannot embed (%s)", tier, exc)
                continue
            return result.vectors[0]
        return None

    # -- unary calls ------------------------------------------------------------------------
    async def call(self, req: TextRequest, ctx: RequestContext) -> CallResult:
        prep = await self._prepare(req, ctx, await self.model_complexity(req, ctx))
        cached = await self._cached(prep)
        if cached is not None:
            return cached
        if prep.decision.escalate_to:  # a cascade route: check, escalate when a check fails
            return await run_cascade(self, prep)
        return await self.answer(prep)

    async def answer(self, prep: Prepared, check: AnswerCheck | None = None) -> CallResult:
        """Admit, call upstream (with fallbacks), meter. ``check`` (a cascade's) sees the
        answer before it is cached; a failure is kept on the row and not cached."""
        chat = isinstance(prep.req, ChatRequest)
        await self._admit(prep)
        upstream_ms = 0.0

        async def attempt(backend: Backend, model: str) -> Completion:
            nonlocal upstream_ms
            await self.admission.admit_fallback(prep, backend.tier)
            t = time.perf_counter()
            try:
                req = self._outgoing(prep, backend, model)
                async with self.priority.slot(backend.tier or "", prep.ctx.priority):
                    return await (backend.chat(req, model, prep.forward_headers) if chat
                                  else backend.complete(req, model, prep.forward_headers))
            finally:
                upstream_ms += (time.perf_counter() - t) * 1000

        self.in_flight += 1
        asyncio.get_running_loop().call_soon(request_digests, prep)  # made while upstream works
        try:
            completion, tier, note = await self.router.run(prep.decision, attempt)
        except BackendError as exc:
            await self._failed(prep, exc)
            raise
        finally:
            self.release(prep)
        if not completion.usage.reported or not completion.usage.total_tokens:
            completion.usage = self.meter.count(prep.req, completion.text)
        completion.tier = tier
        failed = await check(prep, tier, completion) if check is not None else None
        # a cascade's escalation answers for the route's first tier: cached under its key
        key = None if failed is not None else (
            prep.key if prep.parent_request_id else self.served_key(prep, tier))
        cache_row = self.cache.put(key, completion, defer=True) if key else None
        result = await self.meter.finish(prep, tier, self.router.backends[tier].kind,
                                         self.router.model_for(tier, prep.decision),
                                         prep.decision.reason + note, completion, upstream_ms,
                                         also=cache_row, error=failed)
        await self.auditor.after_call(prep, result)
        return result

    async def embed(self, req: EmbeddingRequest, ctx: RequestContext) -> CallResult:
        prep = await self._prepare(req, ctx)
        texts = req.texts()
        await self._admit(prep)
        upstream_ms = 0.0

        async def attempt(backend: Backend, model: str) -> Embeddings:
            nonlocal upstream_ms
            t = time.perf_counter()
            try:
                return await backend.embed(texts, model, prep.forward_headers)
            finally:
                upstream_ms += (time.perf_counter() - t) * 1000

        try:
            emb, tier, note = await self.router.run(prep.decision, attempt)
        except BackendError as exc:
            await self._failed(prep, exc)
            raise
        finally:
            self.admission.release_rate(prep)
        if not emb.usage.prompt_tokens:
            emb.usage = Usage(sum(count_tokens(t) for t in texts), 0, reported=False)
        fake = Completion("", emb.model, "stop", emb.usage)
        result = await self.meter.finish(prep, tier, self.router.backends[tier].kind,
                                         self.router.model_for(tier, prep.decision),
                                         prep.decision.reason + note, fake, upstream_ms)
        result.embeddings, result.completion = emb, None
        return result

    # -- streams --------------------------------------------------------------------------------
    async def stream(self, req: TextRequest, ctx: RequestContext) -> StreamCall:
        """Route and open the stream; fallbacks happen before the first piece is sent."""
        prep = await self._prepare(req, ctx, await self.model_complexity(req, ctx))
        cached = await self._cached(prep)
        if cached is not None:
            return StreamCall(self, prep, cached.tier, "cache", cached.reason, replay=cached)
        if prep.decision.escalate_to:  # checked before the first byte: the answer is replayed
            done = await run_cascade(self, prep)
            return StreamCall(self, prep, done.tier, done.backend, done.reason, replay=done)
        await self._admit(prep)
        chat = isinstance(prep.req, ChatRequest)
        self.in_flight += 1
        # Open for the writer from now until its own row is committed: a group committed on
        # the loop meanwhile would hold back this stream's first token or its [DONE].
        prep.streaming = True
        self.writer.stream_opened()

        async def attempt(backend: Backend, model: str) -> tuple[AsyncIterator[Delta], Delta]:
            await self.admission.admit_fallback(prep, backend.tier)
            req = self._outgoing(prep, backend, model)
            it = (backend.chat_stream(req, model, prep.forward_headers) if chat
                  else backend.complete_stream(req, model, prep.forward_headers)
                  ).__aiter__()
            first = await it.__anext__()  # connection errors surface here, before headers
            return it, first

        asyncio.get_running_loop().call_soon(request_digests, prep)  # made while upstream works
        try:
            (it, first), tier, note = await self.router.run(prep.decision, attempt)
        except BaseException as exc:  # an upstream failure, a fallback's budget, the client left
            self.release(prep)
            failure = (BackendError("upstream stream was empty")
                       if isinstance(exc, StopAsyncIteration) else exc)
            try:
                if isinstance(failure, BackendError):
                    await self._failed(prep, failure)  # a row, and the reservation released
                else:
                    self.admission.release_reservation(prep)
            finally:
                self.stream_done(prep)
            if failure is not exc:
                raise failure from None
            raise
        if prep.ctx.priority != "background" and self.priority.enter(tier):
            prep.priority_tier = tier  # background work yields until this stream ends
        return StreamCall(self, prep, tier, self.router.backends[tier].kind,
                          prep.decision.reason + note, it=it, first=first)

    async def _failed(self, prep: Prepared, exc: BackendError) -> None:
        self.admission.release_reservation(prep)
        tier = exc.tier or prep.decision.tier  # the tier that refused or failed
        await self.meter.failure(prep, tier, self.router.backends[tier].kind,
                                 self.router.model_for(tier, prep.decision), exc)

