"""Prices of a prompt under a provider's cache: levels of reusable prefix, their hit rates
for a lifetime and a call rate, and the cost of 1,000 calls (input and output).

A level is a prefix length that stays identical while values of one rate stay the same
(``per_deployment``: across days; ``per_day``: within a day; ``per_session``: within a
session). Tokens between two levels are read from cache with the deeper level's hit
probability and written otherwise; tokens past the last level are plain input. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from devloop.config import Profile
from devloop.pipeline.providers import ANTHROPIC_WRITE, TTL_SECONDS, CacheModel, cache_model
from devloop.pipeline.rates import hit_probability
from devloop.pricing import ModelPrice, Pricing, cost_map_entry

CALLS = 1000


@dataclass(frozen=True, slots=True)
class CachePricing:
    """What the production model charges, per token, and how its cache behaves."""

    price: ModelPrice | None
    min_cacheable_tokens: int | None
    model: CacheModel | None = None
    write_1h: float | None = None  # per token, Anthropic's 1-hour write


def cache_pricing(profile: Profile, model: str) -> CachePricing:
    price = Pricing(profile).price(model)
    cm = cache_model(model, profile.prompt_cache_min_tokens)
    write_1h = None
    if cm.kind == "anthropic" and price is not None:
        entry = cost_map_entry(model) or {}
        mapped = entry.get("cache_creation_input_token_cost_above_1hr")
        write_1h = float(mapped) if mapped is not None else price.input * ANTHROPIC_WRITE["1h"]
    return CachePricing(price, cm.min_tokens, cm, write_1h)


@dataclass(frozen=True, slots=True)
class Level:
    rate: str  # the fastest rate of the values before this length
    tokens: float  # provider-cached length (0: not cached)


def _rates(p: ModelPrice, pricing: CachePricing, ttl: str) -> tuple[float, float]:
    read = p.cache_read if p.cache_read is not None else p.input
    if ttl == "1h" and pricing.write_1h is not None:
        return read, pricing.write_1h
    kind = pricing.model.kind if pricing.model else "none"
    if p.cache_write is not None:
        return read, p.cache_write
    return read, p.input * (ANTHROPIC_WRITE["5m"] if kind == "anthropic" else 1.0)


def per_call_cost(pricing: CachePricing, levels: list[Level], prompt_tokens: float,
                  output_tokens: float, ttl: str, calls_per_hour: float
                  ) -> tuple[float, float] | None:
    """(USD per call, expected share of input tokens read from cache)."""
    p = pricing.price
    if p is None:
        return None
    cm = pricing.model
    cost, read_tokens, done = 0.0, 0.0, 0.0
    if cm is not None and cm.kind != "none" and p.cache_read is not None:
        read, write = _rates(p, pricing, ttl)
        for level in levels:
            seg = min(level.tokens, prompt_tokens) - done
            if seg <= 0:
                continue
            hit = hit_probability(level.rate, TTL_SECONDS[ttl], calls_per_hour)
            cost += seg * (hit * read + (1 - hit) * write)
            read_tokens += seg * hit
            done += seg
    cost += (prompt_tokens - done) * p.input + output_tokens * p.output
    return cost, (read_tokens / prompt_tokens if prompt_tokens else 0.0)


def best_cost(pricing: CachePricing, levels: list[Level], prompt_tokens: float,
              output_tokens: float, calls_per_hour: float
              ) -> tuple[float | None, str, float]:
    """(USD per 1,000 calls, the cheaper lifetime, cache-read share)."""
    ttls = pricing.model.ttls if pricing.model else ("5m",)
    best: tuple[float | None, str, float] = (None, ttls[0], 0.0)
    for ttl in ttls:
        got = per_call_cost(pricing, levels, prompt_tokens, output_tokens, ttl, calls_per_hour)
        if got is None:
            continue
        usd = round(got[0] * CALLS, 6)
        if best[0] is None or usd < best[0]:
            best = (usd, ttl, round(got[1], 4))
    return best


def token_price_at(pricing: CachePricing, levels: list[Level], position: float, ttl: str,
                   calls_per_hour: float) -> float | None:
    """Expected USD per token at ``position``: the cache-read mix inside a cached level, the
    input price past it (what saving one token there is worth)."""
    p = pricing.price
    if p is None:
        return None
    cm = pricing.model
    if cm is None or cm.kind == "none" or p.cache_read is None:
        return p.input
    read, write = _rates(p, pricing, ttl)
    for level in levels:
        if position < level.tokens:
            hit = hit_probability(level.rate, TTL_SECONDS[ttl], calls_per_hour)
            return hit * read + (1 - hit) * write
    return p.input
