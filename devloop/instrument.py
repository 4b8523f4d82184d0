"""What the gateway does per call for issue 12, as small functions it calls in one line each:
the explicit output limit of a paid call, the cache breakpoints sent to providers that
need them, and the ledger fields metering fills (cache tokens, TTL, reasoning, input and
output cost, session, origin, request hash)."""

from __future__ import annotations

import hashlib
from typing import Any

from devloop.config import Profile
from devloop.pricing import FREE_TIERS, Pricing
from devloop.prompt_caching import (
    add_cache_breakpoints,
    marked_ttls,
    needs_markers,
    output_limit,
    thinking_budget,
)
from devloop.tokens import count_tokens
from devloop.types import ChatRequest, CompletionRequest, EmbeddingRequest, RouteDecision, Usage

OWN_ORIGINS = frozenset({"check", "eval", "judge", "probe", "ladder"})


def is_paid(tier: str, model: str, pricing: Pricing) -> bool:
    """A call on ``tier`` costs money (the frontier, or a local tier the profile prices)."""
    return tier not in FREE_TIERS or pricing.override(model) is not None


def with_output_limit(req: Any, profile: Profile, decision: RouteDecision | None = None) -> Any:
    """``req`` with the explicit output limit a paid call is sent with and reserved
    against (see prompt_caching.output_limit); embeddings pass through."""
    if isinstance(req, EmbeddingRequest):
        return req
    thinking = thinking_budget(req) if isinstance(req, ChatRequest) else 0
    limit = output_limit(req.token_limit(), decision.default_max_tokens if decision else None,
                         decision.max_tokens_cap if decision else None,
                         profile.default_max_tokens, thinking)
    if limit == req.token_limit():
        return req
    update: dict[str, Any] = {"max_tokens": limit}
    if isinstance(req, ChatRequest) and req.max_completion_tokens is not None:
        update["max_completion_tokens"] = limit
    return req.model_copy(update=update)


def for_provider(req: Any, backend_kind: str, model: str, profile: Profile,
                 pricing: Pricing) -> Any:
    """The request as it leaves for ``model``: with `prompt_caching: auto`, a breakpoint
    closing the static prefix for providers that need markers (Anthropic)."""
    if (profile.prompt_caching != "auto" or backend_kind != "litellm"
            or not isinstance(req, ChatRequest)):
        return req
    price = pricing.price(model)
    minimum = profile.prompt_cache_min_tokens or (price.min_cacheable_tokens if price else None)
    return add_cache_breakpoints(req, model, count_tokens, minimum)


def worst_case_cost(pricing: Pricing, tier: str, model: str, req: Any, prompt_tokens: int,
                    output_tokens: int) -> float | None:
    """The most the call can cost: every prompt token written to the provider cache where
    the provider bills writes (at the 1-hour rate when the request asks for that TTL), and
    the whole output limit. None when the price is unknown."""
    if not is_paid(tier, model, pricing):
        return 0.0
    price = pricing.price(model)
    if price is None:
        return None
    writes = hour = 0
    if isinstance(req, ChatRequest) and needs_markers(model):
        writes = prompt_tokens
        hour = prompt_tokens if "1h" in marked_ttls(req) else 0
    return price.cost(prompt_tokens, output_tokens, 0, writes, hour)


def request_hash(req: ChatRequest | CompletionRequest | EmbeddingRequest) -> str:
    """The whole request's hash (model, messages, parameters): identical requests share it."""
    return hashlib.sha1(req.model_dump_json(exclude_none=True).encode()).hexdigest()[:16]


def ledger_fields(usage: Usage, split: tuple[float, float] | None) -> dict[str, Any]:
    """The cache, reasoning and split-cost fields of a ledger row for ``usage``."""
    return {
        "cache_read_tokens": usage.cached_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_write_ttl": usage.cache_write_ttl if usage.cache_write_tokens else None,
        "reasoning_tokens": usage.reasoning_tokens or None,
        "input_cost_usd": None if split is None else round(split[0], 12),
        "output_cost_usd": None if split is None else round(split[1], 12),
    }


def is_own(origin: str | None) -> bool:
    """devloop's own traffic (check drafts, eval runs, judge replays, probes): booked as its
    own kind, never counted as saved."""
    return origin in OWN_ORIGINS
