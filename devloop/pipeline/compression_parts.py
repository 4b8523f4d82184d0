"""The parts the compression stage measures, where they sit in the (reordered) prompt, what a
token there costs, and the protected, windowed, cached compressor it runs them through."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from devloop.evals.evalset import PLACEHOLDER, EvalSet, var_to_text
from devloop.pipeline.cache_order import CacheOrderResult
from devloop.pipeline.cache_prefix import token_position
from devloop.pipeline.cache_prices import CachePricing, Level, token_price_at
from devloop.pipeline.dynamics import literal_dynamics
from devloop.pipeline.protect import compress_protected
from devloop.pipeline.structure import container_at, containers
from devloop.tokens import Tokenizer

MIN_PART_TOKENS = 200  # shorter text is not worth a model pass (nor the risk)
COMPRESSOR_ID = "llmlingua-smollm2-135m/protected-v1"
CALLS = 1000


class Compressor(Protocol):
    def compress(self, text: str, rate: float) -> Any: ...


class Cache(Protocol):
    def get(self, text: str, rate: float, compressor: str) -> str | None: ...
    def put(self, text: str, rate: float, compressor: str, compressed: str,
            seconds: float) -> None: ...


class ProtectedCompressor:
    """Protected spans kept verbatim, windows of bounded size, results cached by hash."""

    def __init__(self, inner: Compressor, tokenizer: Tokenizer, cache: Cache | None = None,
                 window_tokens: int = 400) -> None:
        self.inner = inner
        self.tokenizer = tokenizer
        self.cache = cache
        self.window_tokens = window_tokens
        self.cache_hits = 0

    def _one(self, text: str, rate: float) -> str:
        out = self.inner.compress(text, rate)
        return out if isinstance(out, str) else str(out.text)

    def compress(self, text: str, rate: float) -> str:
        if self.cache is not None:
            hit = self.cache.get(text, rate, COMPRESSOR_ID)
            if hit is not None:
                self.cache_hits += 1
                return hit
        started = time.perf_counter()
        out = compress_protected(text, rate, self._one,
                                 lambda t: len(self.tokenizer.encode(t)), self.window_tokens)
        if self.cache is not None:
            self.cache.put(text, rate, COMPRESSOR_ID, out, time.perf_counter() - started)
        return out


@dataclass(slots=True)
class Part:
    kind: str  # "static" or "document"
    message: int
    start: int
    end: int
    text: str
    var: str | None = None


def static_runs(templates: list[dict[str, str]], tokenizer: Tokenizer) -> list[Part]:
    """Static text between dynamic values, MIN_PART_TOKENS or longer."""
    runs: list[Part] = []
    for i, t in enumerate(templates):
        content = t["content"]
        conts = containers(content)
        cuts = sorted([(m.start(), m.end()) for m in PLACEHOLDER.finditer(content)]
                      + [(s, e) for _k, s, e in literal_dynamics(content)
                         if container_at(conts, s) is None])
        pos = 0
        for start, end in [*cuts, (len(content), len(content))]:
            piece = content[pos:start]
            lead = len(piece) - len(piece.lstrip())
            body = piece.strip()
            if body and len(tokenizer.encode(body)) >= MIN_PART_TOKENS:
                runs.append(Part("static", i, pos + lead, pos + lead + len(body), body))
            pos = end
    return runs


def document_vars(evalset: EvalSet, tokenizer: Tokenizer) -> list[str]:
    """Vars with a value of MIN_PART_TOKENS or more in some case."""
    out = []
    for name in evalset.prompt.variables():
        sizes = [len(tokenizer.encode(var_to_text(c.vars.get(name)))) for c in evalset.cases]
        if sizes and max(sizes) >= MIN_PART_TOKENS:
            out.append(name)
    return out


def reordered_levels(cache: CacheOrderResult) -> tuple[list[Level], str]:
    levels: list[Level] = []
    for lv in cache.levels:
        if lv.reordered_cached_tokens > (levels[-1].tokens if levels else 0):
            levels.append(Level(lv.rate, float(lv.reordered_cached_tokens)))
    return levels, cache.reordered_ttl or "5m"


def mean_price(pricing: CachePricing, levels: list[Level], start: float, end: float, ttl: str,
               calls_per_hour: float) -> float | None:
    """Mean USD per token over [start, end): level by level."""
    if end <= start:
        return token_price_at(pricing, levels, start, ttl, calls_per_hour)
    total, pos = 0.0, start
    for bound in sorted({lv.tokens for lv in levels if start < lv.tokens < end} | {end}):
        price = token_price_at(pricing, levels, pos, ttl, calls_per_hour)
        if price is None:
            return None
        total += (bound - pos) * price
        pos = bound
    return total / (end - start)


def price_part(part: Part, evalset: EvalSet, cache: CacheOrderResult, pricing: CachePricing,
               tokenizer: Any, origin: float) -> tuple[float | None, float | None, bool]:
    """(USD per token where the part sits after the suggested reorder, input USD per token,
    inside a cached level?)."""
    if pricing.price is None:
        return None, None, False
    levels, ttl = reordered_levels(cache)
    templates = evalset.prompt.templates()
    prompt = cache.reordered_prompt
    if prompt is not None:
        system = [{"role": "system", "content": prompt["system"]}] if "system" in prompt else []
        templates = system + [dict(m) for m in prompt["messages"]]
    vars_a = dict(evalset.cases[0].vars)
    message, char = part.message, part.start
    content = templates[message]["content"] if message < len(templates) else ""
    if part.kind == "document":
        found = content.find("{{" + (part.var or "") + "}}")
        char = max(found, 0)
    else:
        found = content.find(part.text[:80])
        char = found if found >= 0 else min(part.start, len(content))
    scale = getattr(tokenizer, "scale", lambda n: n)
    start = float(scale(token_position(templates, evalset.prompt.tools, vars_a, message,
                                       char, tokenizer)))
    price = mean_price(pricing, levels, start, start + origin, ttl, cache.calls_per_hour)
    inside = bool(levels) and start < levels[-1].tokens
    return price, pricing.price.input, inside
