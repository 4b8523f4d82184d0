"""Prices for the cache-order stage: what the production model charges per token, its minimum
cacheable prefix, and the cost of 1,000 calls with a given cached prefix. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from devloop.config import Profile
from devloop.pricing import ModelPrice, Pricing, cost_map_entry

DEFAULT_MIN_CACHEABLE = 1024
CACHING_PROVIDERS = ("anthropic", "openai")
CALLS = 1000


@dataclass(frozen=True, slots=True)
class CachePricing:
    """What the production model charges, per token, and its minimum cacheable prefix."""

    price: ModelPrice | None
    min_cacheable_tokens: int | None


def _provider(model: str) -> str | None:
    if "/" in model:
        return model.split("/", 1)[0]
    entry = cost_map_entry(model) or {}
    provider = entry.get("litellm_provider")
    return str(provider) if provider else None


def cache_pricing(profile: Profile, model: str) -> CachePricing:
    """Prices from the profile's overrides or litellm's bundled map; the minimum cacheable
    length from the profile, else the map's ``prompt_cache_min_tokens``, else 1024 for
    providers that cache (Anthropic, OpenAI, or any model the map gives a cache-read price)."""
    price = Pricing(profile).price(model)
    if profile.prompt_cache_min_tokens is not None:
        return CachePricing(price, profile.prompt_cache_min_tokens)
    entry = cost_map_entry(model) or {}
    if entry.get("prompt_cache_min_tokens") is not None:
        return CachePricing(price, int(entry["prompt_cache_min_tokens"]))
    caches = _provider(model) in CACHING_PROVIDERS or (price is not None and price.cache_read)
    return CachePricing(price, DEFAULT_MIN_CACHEABLE if caches else None)


def cost_per_1k_calls(
    pricing: CachePricing, prompt_tokens: float, prefix_tokens: int, output_tokens: float
) -> float | None:
    """USD for 1,000 calls, assuming they arrive within the cache's lifetime: one call writes
    the prefix, the other 999 read it. A prefix below the minimum is not cached at all."""
    p = pricing.price
    if p is None:
        return None
    minimum = pricing.min_cacheable_tokens
    cacheable = minimum is not None and p.cache_read is not None and prefix_tokens >= minimum
    cached = prefix_tokens if cacheable else 0
    write = p.cache_write if p.cache_write is not None else p.input
    read = p.cache_read if p.cache_read is not None else p.input
    total = (
        CALLS * (prompt_tokens - cached) * p.input
        + cached * write
        + (CALLS - 1) * cached * read
        + CALLS * output_tokens * p.output
    )
    return round(total, 6)
