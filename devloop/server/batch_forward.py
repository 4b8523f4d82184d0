"""devloop's ``/v1/batches``: chat lines routed to a frontier tier go to the provider's Batch
API as ONE batch per (tier, model), at the batch price; the rest run through the gateway at
background priority (batches_service.py).

A frontier group's provider batch id is stored (table ``provider_batches``, ``kind`` gateway,
keyed by devloop's batch id, tier and model) before the first poll, so a restart resumes
polling it. Each answered line is a ledger row booked at the batch price with ``batch_id``
set to the provider's batch id. Lines the provider cannot take as they are (streams, fields an
Anthropic batch cannot carry) stay on the synchronous path, so no field is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from devloop.batch_pricing import batch_price
from devloop.evals.batch_providers import FINAL, BatchRequest, client_for, supports_batch
from devloop.evals.client import EvalCallError, ModelClient, Reply
from devloop.gateway.admission import BudgetExceeded, worst_case_prompt_tokens
from devloop.store.batches import ProviderBatchStore
from devloop.store.calls import CallRecord, insert_call_job, saved
from devloop.types import ChatRequest, RequestContext

if TYPE_CHECKING:
    from devloop.gateway import Gateway

log = logging.getLogger("devloop.batches")
Write = Callable[[dict[str, Any], bool], Awaitable[None]]
# Fields an Anthropic Message Batches request carries from an OpenAI chat line.
ANTHROPIC_FIELDS = frozenset({"model", "messages", "max_tokens", "max_completion_tokens",
                              "temperature"})
DEFAULT_MAX_TOKENS = 1024
POLL_START_S, POLL_MAX_S = 0.5, 30.0


@dataclass(slots=True)
class Group:
    tier: str
    model: str
    lines: list[dict[str, Any]] = field(default_factory=list)
    worst_tokens: dict[str, tuple[int, int]] = field(default_factory=dict)  # for budgets


class FrontierForwarder:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.held: dict[tuple[int, str], Any] = {}  # (group, custom_id) -> Reservation

    @staticmethod
    def context(caller: Any) -> RequestContext:
        """The request context of a batch line (the batch creator's ``CallerContext``)."""
        return RequestContext(request_id=uuid.uuid4().hex, endpoint="chat", protocol="openai",
                              feature=caller.feature, user=caller.user, key_id=caller.key_id,
                              forced_tier=caller.forced_tier, cache_mode=caller.cache_mode,
                              priority="background")

    async def split(self, endpoint: str, lines: list[dict[str, Any]], caller: Any
                    ) -> tuple[list[Group], list[dict[str, Any]]]:
        """(frontier groups, lines for the gateway)."""
        if endpoint != "/v1/chat/completions" or not lines:
            return [], lines
        await self.gw.router.discovered()
        ctx = self.context(caller)
        groups: dict[tuple[str, str], Group] = {}
        rest = []
        for line in lines:
            target = self._target(line, ctx)
            if target is None:
                rest.append(line)
                continue
            group = groups.setdefault(target[:2], Group(*target[:2]))
            group.lines.append(line)
            group.worst_tokens[line["custom_id"]] = target[2]
        return list(groups.values()), rest

    def _target(self, line: dict[str, Any], ctx: RequestContext
                ) -> tuple[str, str, tuple[int, int]] | None:
        body = line["body"]
        if body.get("stream"):
            return None
        try:
            req = ChatRequest.model_validate(body)
            prep = self.gw.prepare(req, replace(ctx))
        except Exception:  # noqa: BLE001 - the gateway path reports the error for this line
            return None
        tier, model = prep.decision.tier, prep.decision.model
        backend = self.gw.router.backends.get(tier)
        if backend is None or backend.kind != "litellm" or not supports_batch(model):
            return None
        if model.startswith("anthropic/") and not set(body) <= ANTHROPIC_FIELDS:
            return None
        limit = prep.req.token_limit() or DEFAULT_MAX_TOKENS
        return tier, model, (worst_case_prompt_tokens(prep.req), limit)

    async def run(self, batch_id: str, groups: list[Group], caller: Any, write: Write,
                  cancelled: Callable[[], bool]) -> None:
        ctx = self.context(caller)
        await asyncio.gather(*(self._group(batch_id, g, ctx, write, cancelled)
                               for g in groups))

    def _request(self, line: dict[str, Any], model: str) -> BatchRequest:
        body = dict(line["body"])
        limit = body.pop("max_completion_tokens", None) or body.pop("max_tokens", None)
        body.pop("max_tokens", None)
        name = model.split("/", 1)[1]
        extra = {k: v for k, v in body.items() if k not in ("model", "messages", "temperature")}
        return BatchRequest(line["custom_id"], name, body["messages"], body.get("temperature"),
                            int(limit or DEFAULT_MAX_TOKENS), extra)

    async def _group(self, batch_id: str, g: Group, ctx: RequestContext, write: Write,
                     cancelled: Callable[[], bool]) -> None:
        cfg = self.gw.profile.tiers[g.tier]
        client = ModelClient(cfg.api_base or cfg.base_url, 2, 4, cfg.timeout, 0.5)
        provider = client_for(g.model, cfg.api_base or cfg.base_url, client, cfg.api_key_env)
        store = ProviderBatchStore(self.gw.settings.db_path)
        key = f"{batch_id}:{g.tier}:{g.model}"
        try:
            pending = await asyncio.to_thread(store.pending_for, key)
            if pending is not None:
                pid = pending["id"]
            else:
                g.lines = await self._admit(g, ctx, write)
                if not g.lines:
                    return
                pid = await provider.submit([self._request(x, g.model) for x in g.lines],
                                            {"devloop_batch": batch_id})
                await asyncio.to_thread(store.add, {
                    "id": pid, "provider": provider.provider, "model": g.model,
                    "api_base": cfg.api_base or cfg.base_url or "", "kind": "gateway",
                    "status": "submitted", "plan_key": key, "requests": len(g.lines),
                    "context": json.dumps({"batch": batch_id})})
            status, interval, asked = "in_progress", POLL_START_S, False
            while status not in FINAL:
                if cancelled() and not asked:
                    status, asked = await provider.cancel(pid), True
                    continue
                await asyncio.sleep(interval)
                interval = min(interval * 1.5, POLL_MAX_S)
                status, _ = await provider.poll(pid)
            results = await provider.results(pid) if status != "failed" else {}
            await asyncio.to_thread(store.update, pid, status, "")
        except EvalCallError as exc:
            log.warning("batch %s: provider batch for %s failed: %s", batch_id, g.model, exc)
            results, pid = {}, None
            failure: Exception = exc
        else:
            failure = EvalCallError(f"provider batch {pid} {status}: no result for this line")
        finally:
            with contextlib.suppress(Exception):
                store.close()
        for line in g.lines:
            reply = results.get(line["custom_id"], failure)
            await write(*await self._record(line, g, reply, pid, ctx))

    async def _admit(self, g: Group, ctx: RequestContext, write: Write) -> list[dict[str, Any]]:
        """Budgets hold for batch lines too: each reserves its worst case at the batch price
        (settled when its row is written); a line over budget is refused with a 429."""
        budgets = self.gw.budgets
        if not budgets.applicable(g.tier, ctx.feature, ctx.key_id):
            return g.lines
        price = batch_price(self.gw.pricing, g.model)
        admitted = []
        for line in g.lines:
            cid = line["custom_id"]
            prompt, limit = g.worst_tokens[cid]
            try:
                if price is None:
                    raise BudgetExceeded(f"budget applies to tier {g.tier} but {g.model!r} has "
                                         "no known price", 3600)
                self.held[(id(g), cid)] = await budgets.reserve(g.tier, ctx.feature, ctx.key_id,
                                                       price.cost(prompt, limit))
            except BudgetExceeded as exc:
                await self.gw.writer.run(insert_call_job(CallRecord(
                    request_id=uuid.uuid4().hex, endpoint="chat", tier=g.tier,
                    backend="litellm", model=g.model, route_reason="batch: provider Batch API",
                    feature=ctx.feature, user=ctx.user, key_id=ctx.key_id, status=429,
                    error=str(exc)[:500], cost_usd=0.0, ts=time.time())))
                await write({"id": f"batch_req_{uuid.uuid4().hex[:24]}", "custom_id": cid,
                             "error": None, "response": {
                                 "status_code": 429, "request_id": uuid.uuid4().hex, "body": {
                                     "error": {"message": str(exc), "type": "budget_exceeded",
                                               "param": None, "code": exc.code}}}}, False)
                continue
            admitted.append(line)
        return admitted

    async def _record(self, line: dict[str, Any], g: Group, reply: Reply | Exception,
                      pid: str | None, ctx: RequestContext) -> tuple[dict[str, Any], bool]:
        request_id = uuid.uuid4().hex
        record: dict[str, Any] = {"id": f"batch_req_{uuid.uuid4().hex[:24]}",
                                  "custom_id": line["custom_id"], "response": None,
                                  "error": None}
        if not isinstance(reply, Reply):
            self.gw.budgets.release(self.held.pop((id(g), line["custom_id"]), None))
            record["response"] = {"status_code": 502, "request_id": request_id, "body": {
                "error": {"message": str(reply), "type": "upstream_error", "param": None,
                          "code": "upstream_error"}}}
            return record, False
        p, c = reply.prompt_tokens, reply.completion_tokens
        record["response"] = {"status_code": 200, "request_id": request_id, "body": {
            "id": f"chatcmpl-{request_id}", "object": "chat.completion",
            "created": int(time.time()), "model": g.model,
            "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                         "message": {"role": "assistant", "content": reply.text}}],
            "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}}
        price = batch_price(self.gw.pricing, g.model)
        cost = None if price is None else price.cost(p, c)
        counterfactual = self.gw.pricing.counterfactual(p, c)
        settle = self.gw.budgets.settle_job(self.held.pop((id(g), line["custom_id"]), None))
        await self.gw.writer.run(insert_call_job(CallRecord(
            request_id=request_id, endpoint="chat", tier=g.tier, backend="litellm",
            model=g.model, route_reason="batch: provider Batch API", feature=ctx.feature,
            user=ctx.user, key_id=ctx.key_id, prompt_tokens=p, completion_tokens=c,
            cost_usd=cost, counterfactual_usd=counterfactual,
            saved_usd=saved(cost, counterfactual),
            production_model=self.gw.profile.production_model, batch_id=pid,
            origin=ctx.origin,
            input_cost_usd=None if price is None else p * price.input,
            output_cost_usd=None if price is None else c * price.output, ts=time.time()),
            settle))
        return record, True
