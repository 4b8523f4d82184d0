"""Pure figures over ledger rows: provider-cache hit rate, retries, output-token
percentiles, and the live cache-order diagnosis (``devloop spend --diagnose``).

Rows are mappings with ledger column names (``ts``, ``feature``, ``model``, ``status``,
``cache``, ``prompt_tokens``, ``completion_tokens``, ``cached_tokens`` or
``cache_read_tokens``, ``cache_write_tokens``, ``cache_write_ttl``, ``cost_usd``,
``prefix_hash``) and, where bodies are stored, ``text`` (the prompt as sent). No I/O here:
the store reads the rows, the commands print the results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from difflib import SequenceMatcher
from statistics import median
from typing import Any

from devloop.pricing import ModelPrice

Row = Mapping[str, Any]
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
DEFAULT_MIN_CACHEABLE = 1024  # Anthropic's minimum for Sonnet/Opus; OpenAI's too
LOW_HIT_RATE = 0.6            # below this the prefix is in the wrong place
RETRY_WINDOW_S = 120.0
SNIPPET_CHARS = 40
MATCH_CHARS = 60_000   # compare at most this much of two prompts
MIN_BLOCK_CHARS = 16   # shorter runs of equal text are coincidence, not a shared prefix


def _i(row: Row, key: str) -> int:
    return int(row.get(key) or 0)


def cache_reads(row: Row) -> int:
    return _i(row, "cache_read_tokens") or _i(row, "cached_tokens")


def provider_cache_hit_rate(rows: Iterable[Row]) -> float | None:
    """Cache-read tokens / (uncached input + cache-read + cache-write tokens), over the
    calls that had any input. ``prompt_tokens`` already counts all three."""
    read = total = 0
    for r in rows:
        p = _i(r, "prompt_tokens")
        if p <= 0:
            continue
        read += min(cache_reads(r), p)
        total += max(p, cache_reads(r) + _i(r, "cache_write_tokens"))
    return round(read / total, 4) if total else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def output_token_percentiles(rows: Iterable[Row]) -> dict[str, float | None]:
    """p50/p95 of completion tokens over answered (status 200) calls."""
    outs = [_i(r, "completion_tokens") for r in rows if int(r.get("status") or 200) == 200]
    return {"output_tokens_p50": percentile(outs, 50), "output_tokens_p95": percentile(outs, 95)}


def request_identity(row: Row) -> tuple[Any, ...] | None:
    """What makes two ledger rows the same request: the hash of the whole request when the
    row has one, else feature, model, leading-prompt hash and prompt length."""
    if row.get("request_hash"):
        return (row.get("feature"), row["request_hash"])
    if row.get("prefix_hash") is None:
        return None
    return (row.get("feature"), row.get("model"), row["prefix_hash"], _i(row, "prompt_tokens"))


def retries(rows: Iterable[Row], window_s: float = RETRY_WINDOW_S) -> int:
    """Calls that repeat an identical request within ``window_s`` of a previous one that
    failed (status other than 200) or whose answer the client evidently could not use
    (it asked again at once, e.g. after a failed parse). Refused calls (429) that are
    retried count too: each retry is a wasted round trip."""
    last: dict[tuple[Any, ...], float] = {}
    count = 0
    for r in sorted(rows, key=lambda r: float(r.get("ts") or 0)):
        ident = request_identity(r)
        if ident is None:
            continue
        ts = float(r.get("ts") or 0)
        prev = last.get(ident)
        if prev is not None and ts - prev <= window_s:
            count += 1
        last[ident] = ts
    return count


# -- the live cache-order diagnosis ------------------------------------------------------------

@dataclass(slots=True)
class Diagnosis:
    feature: str
    kind: str  # prefix_changes | spacing_over_ttl | below_minimum | ttl_too_long
    position: int | None
    text: str | None
    calls: int
    provider_cache_hit_rate: float | None
    cost_per_1k_calls_usd: float | None
    fixed_cost_per_1k_calls_usd: float | None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def first_difference(a: str, b: str) -> int | None:
    """The character offset where ``a`` and ``b`` first differ (None when equal)."""
    if a == b:
        return None
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _per_1k(total: float | None, calls: int) -> float | None:
    return None if total is None or not calls else round(total / calls * 1000, 6)


def _actual_cost(rows: Sequence[Row]) -> float | None:
    costs = [r.get("cost_usd") for r in rows]
    return None if any(c is None for c in costs) else float(sum(costs))  # type: ignore[arg-type]


def _repriced(rows: Sequence[Row], price: ModelPrice | None, cached: Callable[[Row], int],
              write_ttl: str | None = None) -> float | None:
    """The rows' cost with ``cached(row)`` prompt tokens read from the provider cache."""
    if price is None:
        return None
    total = 0.0
    for r in rows:
        p = _i(r, "prompt_tokens")
        reads = min(cached(r), p)
        writes = 0 if write_ttl is None else min(_i(r, "cache_write_tokens"), p - reads)
        total += price.cost(p, _i(r, "completion_tokens"), reads, writes,
                            writes if write_ttl == "1h" else 0)
    return total


def diagnose_feature(feature: str, rows: Sequence[Row], price_of: Callable[[str], ModelPrice | None],
                     count_tokens: Callable[[str], int], min_cacheable: int | None = None,
                     low: float = LOW_HIT_RATE) -> list[Diagnosis]:
    """Why a feature's provider-cache hit rate is low (or its writes cost too much), from
    what its calls show. ``rows``: paid, answered calls of one feature, any order."""
    rows = sorted((r for r in rows if _i(r, "prompt_tokens") > 0), key=lambda r: r.get("ts") or 0)
    if len(rows) < 2:
        return []
    model = str(rows[-1].get("model") or "")
    price = price_of(model) if model else None
    minimum = min_cacheable or (price.min_cacheable_tokens if price else None) \
        or DEFAULT_MIN_CACHEABLE
    rate = provider_cache_hit_rate(rows)
    cost = _actual_cost(rows)
    n = len(rows)
    out: list[Diagnosis] = []

    def add(kind: str, fixed: float | None, message: str, position: int | None = None,
            text: str | None = None) -> None:
        out.append(Diagnosis(feature, kind, position, text, n, rate, _per_1k(cost, n),
                             _per_1k(fixed, n), message))

    gaps = [float(b.get("ts") or 0) - float(a.get("ts") or 0) for a, b in zip(rows, rows[1:], strict=False)]
    ttls = {r.get("cache_write_ttl") for r in rows if r.get("cache_write_ttl")}
    if "1h" in ttls and gaps and max(gaps) <= TTL_SECONDS["5m"]:
        add("ttl_too_long", _repriced(rows, price, cache_reads, "5m"),
            "1-hour cache writes, but every call comes within 5 minutes of the last: a 5-minute "
            "TTL writes at 1.25x instead of 2x the input price")
    if rate is not None and rate >= low:
        return out
    small = sum(_i(r, "prompt_tokens") < minimum for r in rows)
    if small * 2 > n:
        add("below_minimum", cost,
            f"{small} of {n} prompts are under the provider's minimum cacheable length "
            f"({minimum} tokens): they cannot be cached")
        return out
    hashes = [r.get("prefix_hash") for r in rows if r.get("prefix_hash")]
    changing = len(hashes) >= 2 and len(set(hashes)) * 2 > len(hashes)
    if changing:
        position, text, static = _changing_prefix(rows, count_tokens)
        fixed = None
        if static is not None:
            def reads(r: Row) -> int:
                tokens = int(_i(r, "prompt_tokens") * static)
                return tokens if tokens >= minimum else 0
            fixed = _repriced(rows, price, reads)
        where = f" at token {position}" if position is not None else ""
        what = f" ({text!r})" if text else ""
        add("prefix_changes", fixed,
            f"the leading prompt changes on {len(set(hashes))} of {len(hashes)} calls{where}"
            f"{what}: move what changes after the static part", position, text)
        return out
    ttl = TTL_SECONDS["1h"] if ttls == {"1h"} else TTL_SECONDS["5m"]
    if gaps and sum(g > ttl for g in gaps) * 2 >= len(gaps):
        static = [_i(r, "cache_write_tokens") + cache_reads(r) for r in rows]
        common = int(median(static)) if static else 0
        fixed = (_repriced(rows, price, lambda r: common)
                 if ttl < TTL_SECONDS["1h"] and median(gaps) <= TTL_SECONDS["1h"] else cost)
        add("spacing_over_ttl", fixed,
            f"calls are {int(median(gaps))} s apart (median), longer than the {int(ttl)} s cache "
            "TTL: the prefix is written and expires before it is read")
    return out


def _changing_prefix(rows: Sequence[Row], count_tokens: Callable[[str], int]
                     ) -> tuple[int | None, str | None, float | None]:
    """Where consecutive prompts first differ (token offset), the text there, and the share
    of the prompt that is static (identical across calls) and could lead once reordered."""
    texts = [r.get("text") for r in rows if isinstance(r.get("text"), str)]
    if len(texts) < 2:
        return None, None, None
    a, b = texts[-2], texts[-1]
    char = first_difference(a, b)
    if char is None:
        return None, None, None
    start = char  # widen to the start of the word that changes, for a readable name
    while start > 0 and not b[start - 1].isspace() and char - start < SNIPPET_CHARS:
        start -= 1
    end = char
    while end < len(b) and not b[end].isspace() and end - start < SNIPPET_CHARS:
        end += 1
    snippet = b[start:end].strip() or b[char:char + SNIPPET_CHARS]
    # what stays identical between calls, wherever it stands: the prefix once reordered
    blocks = SequenceMatcher(None, a[:MATCH_CHARS], b[:MATCH_CHARS], autojunk=False)
    same = "".join(b[m.b:m.b + m.size] for m in blocks.get_matching_blocks()
                   if m.size >= MIN_BLOCK_CHARS)
    # as a share of the prompt: the provider's tokenizer counts differently from ours
    return count_tokens(b[:start]), snippet, len(same) / max(len(b), 1)


def diagnose(rows: Iterable[Row], price_of: Callable[[str], ModelPrice | None],
             count_tokens: Callable[[str], int], min_cacheable: int | None = None,
             low: float = LOW_HIT_RATE) -> list[Diagnosis]:
    """Diagnoses for every feature in ``rows`` (paid, answered calls)."""
    by_feature: dict[str, list[Row]] = {}
    for r in rows:
        by_feature.setdefault(str(r.get("feature") or "(none)"), []).append(r)
    out: list[Diagnosis] = []
    for feature in sorted(by_feature):
        out.extend(diagnose_feature(feature, by_feature[feature], price_of, count_tokens,
                                    min_cacheable, low))
    return out
