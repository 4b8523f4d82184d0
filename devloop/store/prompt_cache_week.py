"""The dashboard's provider prompt-cache hit rate for this week: `devloop spend`'s figure
(spend_analysis.provider_cache_hit_rate over spend_detail's rows: answered calls off the
local and embedded tiers), with the week's past days read once.

Past days never change (rows are stamped when written), so only today is re-read; the calls
that neither read nor wrote the cache add only their input tokens, so SQL sums them into
one row for the function.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from devloop.spend_analysis import provider_cache_hit_rate
from devloop.store.spend_detail import NO_PROVIDER_CACHE_SQL

Query = Callable[[str, Sequence[Any]], list[Any]]
_PAID = f"coalesce(status, 200) = 200 AND coalesce(tier, '') NOT IN ({NO_PROVIDER_CACHE_SQL})"
_CACHE_READ = "coalesce(nullif(cache_read_tokens, 0), cached_tokens, 0)"
_NO_CACHE = f"{_CACHE_READ} = 0 AND coalesce(cache_write_tokens, 0) = 0"
ROWS_SQL = f"""
    SELECT prompt_tokens, {_CACHE_READ} AS cache_read_tokens, cache_write_tokens FROM calls
        WHERE ts >= ? AND ts < ? AND {_PAID} AND NOT ({_NO_CACHE})
    UNION ALL SELECT sum(prompt_tokens), 0, 0 FROM calls
        WHERE ts >= ? AND ts < ? AND {_PAID} AND {_NO_CACHE}"""


class PromptCacheWeek:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._past: tuple[tuple[float, float], list[dict[str, Any]]] | None = None

    def rate(self, query: Query, week_start: float, day_start: float, day_end: float
             ) -> float | None:
        """The hit rate of the calls from ``week_start`` to ``day_end``; the days before
        ``day_start`` are read once."""
        with self._lock:
            past = self._past[1] if self._past and self._past[0] == (week_start, day_start) \
                else None
        if past is None:
            past = _rows(query, week_start, day_start)
            with self._lock:
                self._past = ((week_start, day_start), past)
        return provider_cache_hit_rate([*past, *_rows(query, day_start, day_end)])

    def forget(self) -> None:
        with self._lock:
            self._past = None


def _rows(query: Query, start: float, end: float) -> list[dict[str, Any]]:
    if end <= start:
        return []
    return [dict(r) for r in query(ROWS_SQL, [start, end, start, end])]
