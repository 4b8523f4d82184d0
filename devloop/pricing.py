"""Prices in USD: litellm's bundled cost map, read as JSON (importing litellm takes seconds),
with per-profile overrides. An unknown price is ``None``, never zero."""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from devloop.config import Price, Profile

FREE_TIERS = frozenset({"local", "embedded", "shared"})
COST_MAP_FILE = "model_prices_and_context_window_backup.json"
# litellm's long-context tiers, e.g. input_cost_per_token_above_200k_tokens.
TIER_KEY = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per token (not per million), as in litellm's map."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    min_cacheable_tokens: int | None = None
    # Above ``long_context_tokens`` prompt tokens the whole call is priced at the long rates.
    long_context_tokens: int | None = None
    long_input: float | None = None
    long_output: float | None = None
    long_cache_read: float | None = None
    long_cache_write: float | None = None

    @classmethod
    def from_override(cls, p: Price) -> ModelPrice:
        per = 1e-6
        return cls(
            p.input * per,
            p.output * per,
            None if p.cache_read is None else p.cache_read * per,
            None if p.cache_write is None else p.cache_write * per,
        )

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
             cache_write_tokens: int = 0) -> float:
        """litellm's arithmetic: fresh input + cache reads + cache writes + output."""
        inp, out, read, write = self.input, self.output, self.cache_read, self.cache_write
        if self.long_context_tokens is not None and prompt_tokens > self.long_context_tokens:
            inp = self.long_input if self.long_input is not None else inp
            out = self.long_output if self.long_output is not None else out
            read = self.long_cache_read if self.long_cache_read is not None else read
            write = self.long_cache_write if self.long_cache_write is not None else write
        cached = min(max(cached_tokens, 0), prompt_tokens)
        written = min(max(cache_write_tokens, 0), prompt_tokens - cached)
        fresh = prompt_tokens - cached - written
        return (fresh * inp + cached * (read if read is not None else inp)
                + written * (write if write is not None else inp) + completion_tokens * out)


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


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _from_entry(entry: dict[str, Any]) -> ModelPrice | None:
    inp, out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if inp is None:
        return None
    if out is None:
        out = 0.0 if entry.get("mode") == "embedding" else None
        if out is None:
            return None
    long_at: int | None = None
    for key in entry:
        m = TIER_KEY.match(key)
        if m:
            long_at = int(m.group(1)) * 1000
    suffix = f"_above_{long_at // 1000}k_tokens" if long_at else ""
    return ModelPrice(
        float(inp),
        float(out),
        _num(entry.get("cache_read_input_token_cost")),
        _num(entry.get("cache_creation_input_token_cost")),
        entry.get("prompt_cache_min_tokens"),
        long_at,
        _num(entry.get(f"input_cost_per_token{suffix}")) if long_at else None,
        _num(entry.get(f"output_cost_per_token{suffix}")) if long_at else None,
        _num(entry.get(f"cache_read_input_token_cost{suffix}")) if long_at else None,
        _num(entry.get(f"cache_creation_input_token_cost{suffix}")) if long_at else None,
    )


def cost_map_entry(model: str) -> dict[str, Any] | None:
    """``model``'s entry in litellm's map, with or without its provider prefix (the one
    lookup: prices, cache minimums and providers all come through here)."""
    cmap = load_cost_map()
    candidates = [model]
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    for name in candidates:
        entry = cmap.get(name)
        if entry:
            return entry
    return None


def lookup_model(model: str) -> ModelPrice | None:
    """Find ``model``'s price in the cost map, with or without its provider prefix."""
    entry = cost_map_entry(model)
    return _from_entry(entry) if entry else None


class Pricing:
    """Prices for one profile: overrides first, then litellm's map; free local tiers."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._overrides = {k: ModelPrice.from_override(v) for k, v in profile.prices.items()}
        self._cache: dict[str, ModelPrice | None] = {}

    def override(self, model: str) -> ModelPrice | None:
        """The profile's own price for ``model`` (also matched without a provider prefix)."""
        found = self._overrides.get(model)
        if found is None and "/" in model:
            found = self._overrides.get(model.split("/", 1)[1])
        return found

    def price(self, model: str) -> ModelPrice | None:
        found = self.override(model)
        if found is not None:
            return found
        if model not in self._cache:
            self._cache[model] = lookup_model(model)
        return self._cache[model]

    def cost(
        self, model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float | None:
        p = self.price(model)
        if p is None:
            return None
        return p.cost(prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens)

    def tier_cost(
        self, tier: str, model: str, prompt_tokens: int, completion_tokens: int, cached: int = 0
    ) -> float | None:
        """What a call actually cost: local tiers are free unless the profile prices them."""
        if tier in FREE_TIERS and self.override(model) is None:
            return 0.0
        return self.cost(model, prompt_tokens, completion_tokens, cached)

    def counterfactual(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """The same tokens priced at the production model (no provider cache assumed)."""
        return self.cost(self.profile.production_model, prompt_tokens, completion_tokens)
