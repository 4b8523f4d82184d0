"""`devloop spend` views added by issue 12: the live cache-order diagnosis (`--diagnose`)
and the provider-cache and waste columns. No click here: spend.py parses and calls."""

from __future__ import annotations

import time
from typing import Any

from devloop.config import Profile
from devloop.money import format_usd
from devloop.pricing import Pricing
from devloop.spend_analysis import diagnose
from devloop.store.spend_detail import diagnosis_rows
from devloop.tokens import count_tokens


def diagnose_report(db: Any, profile: Profile, since_seconds: float | None) -> dict[str, Any]:
    """`spend --diagnose --json`: why each feature's provider-cache hit rate is low."""
    since_ts = None if since_seconds is None else time.time() - since_seconds
    pricing = Pricing(profile)
    found = diagnose(diagnosis_rows(db, since_ts), pricing.price, count_tokens,
                     profile.prompt_cache_min_tokens)
    return {"diagnoses": [d.as_dict() for d in found]}


def diagnosis_lines(report: dict[str, Any]) -> list[str]:
    if not report["diagnoses"]:
        return ["no provider-cache problems found in the paid calls of this period"]
    out = []
    for d in report["diagnoses"]:
        rate = d["provider_cache_hit_rate"]
        out.append(f"{d['feature']}: {d['kind']} ({d['calls']} calls, provider-cache hit rate "
                   f"{'n/a' if rate is None else f'{rate:.0%}'})")
        out.append(f"  {d['message']}")
        out.append(f"  {format_usd(d['cost_per_1k_calls_usd'])} per 1,000 calls now; "
                   f"{format_usd(d['fixed_cost_per_1k_calls_usd'])} per 1,000 calls fixed")
    return out


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
