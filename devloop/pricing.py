"""Prices in USD: litellm's bundled cost map, read as JSON (importing litellm takes seconds),
with per-profile overrides. An unknown price is ``None``, never zero.

Sources, field by field (all from ``model_prices_and_context_window_backup.json``):

- fresh input ``input_cost_per_token``; output ``output_cost_per_token``;
- cache reads ``cache_read_input_token_cost`` (when absent: the input rate, so a
  missing field never makes reads free);
- cache writes with a 5-minute TTL ``cache_creation_input_token_cost`` (absent: input
  rate); with a 1-hour TTL ``cache_creation_input_token_cost_above_1hr``, and when the
  map lacks it, 2x the input rate, as Anthropic's pricing page states ("1h cache writes:
  2x base input tokens price"; 5-minute writes are 1.25x, reads 0.1x);
- reasoning tokens ``output_cost_per_reasoning_token`` (absent: the output rate); they
  are part of ``completion_tokens``, as OpenAI, Gemini and litellm report them;
- long-context tiers ``*_above_<N>k_tokens`` (e.g. ``input_cost_per_token_above_200k_tokens``,
  ``cache_creation_input_token_cost_above_1hr_above_200k_tokens``): when the prompt
  (fresh + cache reads + cache writes) exceeds the largest N it passes, every token of the
  call is priced at that tier, as litellm's ``generic_cost_per_token`` does.

``ModelPrice.split`` returns input and output cost separately; the ledger keeps both.
Models priced by a ``tiered_pricing`` table in the map are not read (their tier rules
differ); they price as their flat fields say.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from devloop.config import Price, Profile

FREE_TIERS = frozenset({"local", "embedded", "shared"})
COST_MAP_FILE = "model_prices_and_context_window_backup.json"
# litellm's long-context tiers, e.g. input_cost_per_token_above_200k_tokens.
TIER_KEY = re.compile(r"^input_cost_per_token_above_(\d+)(k?)_tokens$")
ONE_HOUR_WRITE_FACTOR = 2.0  # Anthropic: 1h cache writes cost 2x the base input price


class UsageLike(Protocol):
    """What pricing reads from a usage (devloop.types.Usage fits)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    cache_write_ttl: str | None
    cache_write_1h_tokens: int
    reasoning_tokens: int


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
    cache_write_1h: float | None = None
    long_cache_write_1h: float | None = None
    reasoning: float | None = None
    long_reasoning: float | None = None

    @classmethod
    def from_override(cls, p: Price) -> ModelPrice:
        per = 1e-6
        return cls(
            p.input * per,
            p.output * per,
            None if p.cache_read is None else p.cache_read * per,
            None if p.cache_write is None else p.cache_write * per,
        )

    def at(self, prompt_tokens: int) -> ModelPrice:
        """The flat rates that apply to a call with ``prompt_tokens`` (long tier or not)."""
        if self.long_context_tokens is None or prompt_tokens <= self.long_context_tokens:
            return self
        inp = self.long_input if self.long_input is not None else self.input
        return replace(
            self, input=inp,
            output=self.long_output if self.long_output is not None else self.output,
            cache_read=self.long_cache_read if self.long_cache_read is not None else self.cache_read,
            cache_write=(self.long_cache_write if self.long_cache_write is not None
                         else self.cache_write),
            cache_write_1h=(self.long_cache_write_1h if self.long_cache_write_1h is not None
                            else inp * ONE_HOUR_WRITE_FACTOR),
            reasoning=self.long_reasoning if self.long_reasoning is not None else self.reasoning,
            long_context_tokens=None)

    def split(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
              cache_write_tokens: int = 0, cache_write_1h_tokens: int = 0,
              reasoning_tokens: int = 0) -> tuple[float, float]:
        """(input cost, output cost). ``prompt_tokens`` includes cache reads and writes;
        ``cache_write_1h_tokens`` is the part of the writes made with a 1-hour TTL;
        ``reasoning_tokens`` is the part of ``completion_tokens`` spent thinking."""
        r = self.at(prompt_tokens)
        cached = min(max(cached_tokens, 0), prompt_tokens)
        written = min(max(cache_write_tokens, 0), prompt_tokens - cached)
        long_written = min(max(cache_write_1h_tokens, 0), written)
        fresh = prompt_tokens - cached - written
        read = r.cache_read if r.cache_read is not None else r.input
        write = r.cache_write if r.cache_write is not None else r.input
        write_1h = r.cache_write_1h if r.cache_write_1h is not None \
            else r.input * ONE_HOUR_WRITE_FACTOR
        thinking = min(max(reasoning_tokens, 0), completion_tokens)
        think_rate = r.reasoning if r.reasoning is not None else r.output
        input_cost = (fresh * r.input + cached * read + (written - long_written) * write
                      + long_written * write_1h)
        output_cost = (completion_tokens - thinking) * r.output + thinking * think_rate
        return input_cost, output_cost

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
             cache_write_tokens: int = 0, cache_write_1h_tokens: int = 0,
             reasoning_tokens: int = 0) -> float:
        """litellm's arithmetic: fresh input + cache reads + cache writes + output."""
        return sum(self.split(prompt_tokens, completion_tokens, cached_tokens,
                              cache_write_tokens, cache_write_1h_tokens, reasoning_tokens))

    def usage_split(self, u: UsageLike) -> tuple[float, float]:
        return self.split(u.prompt_tokens, u.completion_tokens, u.cached_tokens,
                          u.cache_write_tokens, one_hour_writes(u), u.reasoning_tokens)


def one_hour_writes(u: UsageLike) -> int:
    """The cache-write tokens made with a 1-hour TTL."""
    if u.cache_write_1h_tokens:
        return u.cache_write_1h_tokens
    return u.cache_write_tokens if u.cache_write_ttl == "1h" else 0


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
    suffix = ""
    for key in entry:
        m = TIER_KEY.match(key)
        if m:
            at = int(m.group(1)) * (1000 if m.group(2) else 1)
            if long_at is None or at > long_at:
                long_at, suffix = at, f"_above_{m.group(1)}{m.group(2)}_tokens"

    def long(name: str) -> float | None:
        return _num(entry.get(f"{name}{suffix}")) if long_at else None

    return ModelPrice(
        float(inp),
        float(out),
        _num(entry.get("cache_read_input_token_cost")),
        _num(entry.get("cache_creation_input_token_cost")),
        entry.get("prompt_cache_min_tokens"),
        long_at,
        long("input_cost_per_token"),
        long("output_cost_per_token"),
        long("cache_read_input_token_cost"),
        long("cache_creation_input_token_cost"),
        _num(entry.get("cache_creation_input_token_cost_above_1hr")),
        long("cache_creation_input_token_cost_above_1hr"),
        _num(entry.get("output_cost_per_reasoning_token")),
        long("output_cost_per_reasoning_token"),
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

    def split(self, model: str, usage: UsageLike) -> tuple[float, float] | None:
        """(input cost, output cost) of ``usage`` on ``model``, every cache field priced."""
        p = self.price(model)
        return None if p is None else p.usage_split(usage)

    def tier_split(self, tier: str, model: str, usage: UsageLike) -> tuple[float, float] | None:
        """What a call actually cost, input and output: local tiers are free unless priced."""
        if tier in FREE_TIERS and self.override(model) is None:
            return 0.0, 0.0
        return self.split(model, usage)

    def tier_cost(
        self, tier: str, model: str, prompt_tokens: int, completion_tokens: int, cached: int = 0,
        cache_write: int = 0,
    ) -> float | None:
        """What a call actually cost: local tiers are free unless the profile prices them.
        Provider cache reads and writes are priced at their own rates (litellm's map)."""
        if tier in FREE_TIERS and self.override(model) is None:
            return 0.0
        return self.cost(model, prompt_tokens, completion_tokens, cached, cache_write)

    def counterfactual(self, prompt_tokens: int, completion_tokens: int,
                       model: str | None = None) -> float | None:
        """The same tokens priced at the production model (no provider cache assumed)."""
        return self.cost(model or self.profile.production_model, prompt_tokens,
                         completion_tokens)
