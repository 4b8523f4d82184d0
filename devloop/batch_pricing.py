"""Batch prices: what a provider Batch API charges for a model.

litellm's map carries ``input_cost_per_token_batches`` / ``output_cost_per_token_batches``
for some models; where it does, those are the prices. Elsewhere (and for the profile's own
``prices:`` overrides) the providers' documented discount applies: half the synchronous
price for input and output. An unknown synchronous price stays unknown (``None``).
"""

from __future__ import annotations

from dataclasses import replace

from devloop.config import Profile
from devloop.pricing import ModelPrice, Pricing, cost_map_entry

BATCH_DISCOUNT = 0.5  # Anthropic Message Batches and the OpenAI Batch API: 50% off


def _half(value: float | None) -> float | None:
    return None if value is None else value * BATCH_DISCOUNT


def batch_price(pricing: Pricing, model: str) -> ModelPrice | None:
    """``model``'s batch price: the map's batch fields, else half its synchronous price."""
    sync = pricing.price(model)
    if sync is None:
        return None
    entry = None if pricing.override(model) is not None else cost_map_entry(model)
    inp = (entry or {}).get("input_cost_per_token_batches")
    out = (entry or {}).get("output_cost_per_token_batches")
    return replace(
        sync,
        input=float(inp) if inp is not None else sync.input * BATCH_DISCOUNT,
        output=float(out) if out is not None else sync.output * BATCH_DISCOUNT,
        cache_read=_half(sync.cache_read), cache_write=_half(sync.cache_write),
        long_input=_half(sync.long_input), long_output=_half(sync.long_output),
        long_cache_read=_half(sync.long_cache_read),
        long_cache_write=_half(sync.long_cache_write),
    )


class BatchPricing(Pricing):
    """A :class:`Pricing` that prices ``batched`` models at their batch price (estimates,
    ``--max-cost`` and booked costs of a batch run); ``sync`` prices everything else, such as
    the judge calls made synchronously while grading."""

    def __init__(self, profile: Profile, batched: set[str] | None = None) -> None:
        super().__init__(profile)
        self.sync = Pricing(profile)
        self.batched = set(batched or ())

    def price(self, model: str) -> ModelPrice | None:
        if model in self.batched:
            return batch_price(self.sync, model)
        return self.sync.price(model)
