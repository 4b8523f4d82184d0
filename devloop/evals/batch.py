"""``devloop eval --batch``: the cases go to the provider's Batch API at the batch price.

OpenAI-compatible models (``openai/...``, devloop's own endpoint with ``--api-base``) go
through litellm's files and batches calls; ``anthropic/...`` through Anthropic Message
Batches (devloop.evals.batch_providers). The batch id and its state are in SQLite (table
``provider_batches``) before the first poll, so a run interrupted by a restart finds its
batch again and resumes polling instead of submitting (and paying for) it twice. Each
request's result is booked in the ledger at the batch price, with ``batch_id`` on the row.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from typing import Any

from devloop.batch_pricing import batch_price
from devloop.evals.batch_providers import (
    FINAL,
    BatchRequest,
    check_batch_model,
    client_for,
    parse_openai_output,
    provider_of,
    supports_batch,
)
from devloop.evals.client import EvalCallError, ModelClient, Reply
from devloop.evals.plan import Plan, PlannedCase, RunOptions
from devloop.evals.report import Progress
from devloop.pricing import Pricing
from devloop.store.batches import ProviderBatchStore, book_batch_calls
from devloop.store.calls import CallRecord, saved

__all__ = ["batch_replies", "check_batch_model", "parse_output", "supports_batch"]
parse_output = parse_openai_output  # the OpenAI output format, kept under its old name
MAX_POLL_S = 30.0


def plan_key(plan: Plan, items: list[PlannedCase], api_base: str | None) -> str:
    digest = hashlib.sha256(json.dumps([plan.model, api_base or "", sorted(i.key for i in items)])
                            .encode()).hexdigest()
    return digest[:32]


def requests_for(plan: Plan, items: list[PlannedCase]) -> list[BatchRequest]:
    """The cases with the eval set's request params (sampling options, tools, ...)."""
    name = plan.model.split("/", 1)[1] if "/" in plan.model else plan.model
    extra = {k: v for k, v in plan.params.items()
             if k not in ("api_base", "judge", "embedding", "temperature", "max_tokens")}
    return [BatchRequest(i.case.id, name, i.messages, plan.params.get("temperature"),
                         plan.max_tokens, extra) for i in items]


def ledger_records(plan: Plan, batch_id: str, replies: dict[str, Reply | Exception],
                   pricing: Pricing) -> list[CallRecord]:
    """One row per answered request, booked at the batch price."""
    price = batch_price(getattr(pricing, "sync", pricing), plan.model)
    out = []
    for reply in replies.values():
        if not isinstance(reply, Reply):
            continue
        p, c = reply.prompt_tokens, reply.completion_tokens
        cost = None if price is None else price.cost(p, c)
        counterfactual = cost  # devloop's own traffic (an eval run): never counted as saved
        out.append(CallRecord(
            request_id=uuid.uuid4().hex, endpoint="chat", tier="frontier",
            backend=f"batch:{provider_of(plan.model)}", model=plan.model,
            route_reason="eval --batch", feature=f"eval-{plan.evalset.name}",
            prompt_tokens=p, completion_tokens=c, cost_usd=cost,
            counterfactual_usd=counterfactual, saved_usd=saved(cost, counterfactual),
            production_model=plan.model, batch_id=batch_id, origin="eval",
            input_cost_usd=None if price is None else p * price.input,
            output_cost_usd=None if price is None else c * price.output, ts=time.time()))
    return out


async def batch_replies(plan: Plan, items: list[PlannedCase], opts: RunOptions,
                        client: ModelClient, progress: Progress,
                        pricing: Pricing | None = None) -> dict[str, Reply | Exception]:
    check_batch_model(plan.model)
    provider = client_for(plan.model, client.api_base, client)
    key = plan_key(plan, items, client.api_base)
    store = ProviderBatchStore(opts.db_path) if opts.db_path is not None else None
    try:
        pending = store.pending_for(key) if store is not None else None
        if pending is not None:
            batch_id = pending["id"]
            progress.note(f"batch {batch_id} resumed ({pending['requests']} requests)")
        else:
            batch_id = await provider.submit(requests_for(plan, items),
                                             {"devloop_evalset": plan.evalset.name})
            if store is not None:
                store.add({"id": batch_id, "provider": provider.provider, "model": plan.model,
                           "api_base": client.api_base or "", "kind": "eval",
                           "status": "submitted", "plan_key": key, "requests": len(items),
                           "context": json.dumps({"evalset": plan.evalset.name})})
            progress.note(f"batch {batch_id} submitted ({len(items)} requests)")
        plan.batch_id = batch_id
        status, detail = await _wait(provider, batch_id, opts, store)
        results: dict[str, Reply | Exception] = {}
        if status in ("ended", "cancelled", "expired"):
            results = await provider.results(batch_id)
        if store is not None:
            store.update(batch_id, "cancelled" if status == "cancelled" else
                         ("ended" if status == "ended" else status), detail)
            if pricing is not None:
                book_batch_calls(opts.db_path,  # type: ignore[arg-type]
                                 ledger_records(plan, batch_id, results, pricing))
    finally:
        if store is not None:
            store.close()
    failure = EvalCallError(f"batch {batch_id} {status}: {detail or status}" if status != "ended"
                            else f"batch {batch_id} has no result for this case")
    return {item.case.id: results.get(item.case.id, failure) for item in items}


async def _wait(provider: Any, batch_id: str, opts: RunOptions,
                store: ProviderBatchStore | None) -> tuple[str, str]:
    """Poll with backoff until the batch is final."""
    deadline = time.monotonic() + opts.batch_timeout_s
    interval = opts.poll_interval_s
    last = ""
    while True:
        status, detail = await provider.poll(batch_id)
        if status in FINAL:
            return status, detail
        if store is not None and status != last:
            store.update(batch_id, status, detail)
            last = status
        if time.monotonic() > deadline:
            raise EvalCallError(f"batch {batch_id} did not finish in {opts.batch_timeout_s:g}s "
                                "(it is still running; run the same command again to resume)")
        await asyncio.sleep(interval)
        interval = min(interval * 1.5, max(MAX_POLL_S, opts.poll_interval_s))
