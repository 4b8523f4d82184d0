"""Prices in USD: litellm's bundled cost map, read as JSON (importing litellm takes seconds),
with per-profile overrides. An unknown price is ``None``, never zero."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from devloop.config import Price, Profile

FREE_TIERS = frozenset({"local", "embedded", "shared"})
COST_MAP_FILE = "model_prices_and_context_window_backup.json"


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per token (not per million), as in litellm's map."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    min_cacheable_tokens: int | None = None

    @classmethod
    def from_override(cls, p: Price) -> ModelPrice:
        per = 1e-6
        return cls(
            p.input * per,
            p.output * per,
            None if p.cache_read is None else p.cache_read * per,
            None if p.cache_write is None else p.cache_write * per,
        )


def litellm_cost_map_path() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / COST_MAP_FILE
    return path if path.is_file() else None


@lru_cache(maxsize=1)
def load_cost_map() -> dict[str, dict[str, Any]]:
    path = litellm_cost_map_path()
    if path is None:
        return {}
    data: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    data.pop("sample_spec", None)
    return data


def _from_entry(entry: dict[str, Any]) -> ModelPrice | None:
    inp, out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if inp is None or out is None:
        return None
    return ModelPrice(
        float(inp),
        float(out),
        entry.get("cache_read_input_token_cost"),
        entry.get("cache_creation_input_token_cost"),
        entry.get("prompt_cache_min_tokens"),
    )


def lookup_model(model: str) -> ModelPrice | None:
    """Find ``model`` in the cost map, with or without its provider prefix."""
    cmap = load_cost_map()
    candidates = [model]
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    for name in candidates:
        entry = cmap.get(name)
        if entry:
            return _from_entry(entry)
    return None


class Pricing:
    """Prices for one profile: overrides first, then litellm's map; free local tiers."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._overrides = {k: ModelPrice.from_override(v) for k, v in profile.prices.items()}
        self._cache: dict[str, ModelPrice | None] = {}

    def price(self, model: str) -> ModelPrice | None:
        if model in self._overrides:
            return self._overrides[model]
        if model not in self._cache:
            self._cache[model] = lookup_model(model)
        return self._cache[model]

    def cost(
        self, model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
    ) -> float | None:
        p = self.price(model)
        if p is None:
            return None
        fresh = max(prompt_tokens - cached_tokens, 0)
        read = p.cache_read if p.cache_read is not None else p.input
        return fresh * p.input + cached_tokens * read + completion_tokens * p.output

    def tier_cost(
        self, tier: str, model: str, prompt_tokens: int, completion_tokens: int, cached: int = 0
    ) -> float | None:
        """What a call actually cost: local tiers are free unless the profile prices them."""
        if model in self._overrides or tier not in FREE_TIERS:
            return self.cost(model, prompt_tokens, completion_tokens, cached)
        return 0.0

    def counterfactual(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """The same tokens priced at the production model."""
        return self.cost(self.profile.production_model, prompt_tokens, completion_tokens)
