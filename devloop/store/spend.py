"""`devloop spend`'s figures from the ledger: totals and groups, with unknown prices kept
unknown (a sum with a NULL price in it is None, never a partial figure)."""

from __future__ import annotations

import re
import time
from datetime import tzinfo
from typing import Any

import sqlite_utils

from devloop.money import total_usd
from devloop.store.spend_detail import add_details, register_day

GROUPINGS = {
    "tier": "tier",
    "model": "model",
    "feature": "coalesce(feature, '(none)')",
    "user": "coalesce(user, '(none)')",
    "day": "devloop_day(ts)",  # the date in the `timezone` setting's zone
    # the pipeline's prompt hash when the call named one, else its leading-text hash
    "prompt": "coalesce(prompt_hash, prefix_hash, '(none)')",
    "session": "coalesce(session, '(none)')",  # a coding agent's session (Claude Code, Codex)
}
PERIODS = {"1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "all": None}
PERIOD_PATTERN = re.compile(r"(\d+)([hdw])")
LOCAL_TIERS = ("local", "embedded", "shared")


def period_seconds(since: str) -> float | None:
    """'1d', '7d', '30d', 'all' (and any '<n>h', '<n>d', '<n>w') -> seconds, None for all."""
    if since in PERIODS:
        return PERIODS[since]
    m = PERIOD_PATTERN.fullmatch(since.strip())
    if not m:
        raise ValueError(f"--since must be one of {', '.join(PERIODS)} (or e.g. 12h, 2w), "
                         f"not {since!r}")
    return int(m.group(1)) * {"h": 3600, "d": 86400, "w": 604800}[m.group(2)]


def unknown_sql(column: str, when: str = "") -> str:
    """SQL counting the rows whose price is unknown: NULL on a call that answered (a failed
    call used no tokens, so it is a known $0). money.total_usd turns it into None."""
    return f"sum({when}{column} IS NULL AND status = 200)"


def spend_report(
    db: sqlite_utils.Database, since: str = "all", by: str | None = None,
    tz: tzinfo | None = None,
) -> dict[str, Any]:
    """The `devloop spend` figures: totals, and groups when ``by`` is given."""
    seconds = period_seconds(since)
    register_day(db, tz)
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"--by must be one of {', '.join(GROUPINGS)}")
    where, params = "", []
    if seconds is not None:
        where, params = "WHERE ts >= ?", [time.time() - seconds]
    local = ", ".join(f"'{t}'" for t in LOCAL_TIERS)
    fields = f"""
        count(*) AS calls,
        coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
        coalesce(sum(completion_tokens), 0) AS completion_tokens,
        sum(cost_usd) AS cost_usd, {unknown_sql("cost_usd")} AS cost_unknown,
        sum(counterfactual_usd) AS counterfactual_usd,
        {unknown_sql("counterfactual_usd")} AS counterfactual_unknown,
        sum(saved_usd) AS saved_usd, {unknown_sql("saved_usd")} AS saved_unknown,
        coalesce(avg(cache = 'hit'), 0) AS cache_hit_rate,
        coalesce(avg(tier IN ({local})), 0) AS local_share
    """

    def shape(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "calls": row["calls"],
            "prompt_tokens": row["prompt_tokens"],
            "completion_tokens": row["completion_tokens"],
            "cost_usd": total_usd(row["cost_usd"], row["cost_unknown"]),
            "counterfactual_usd": total_usd(row["counterfactual_usd"], row["counterfactual_unknown"]),
            "saved_usd": total_usd(row["saved_usd"], row["saved_unknown"]),
            "cache_hit_rate": round(row["cache_hit_rate"], 4),
            "local_share": round(row["local_share"], 4),
            "unpriced_calls": row["cost_unknown"] or 0,
        }

    totals = next(iter(db.query(f"SELECT {fields} FROM calls {where}", params)))
    report: dict[str, Any] = {"since": since, "totals": shape(totals), "groups": []}
    if by:
        key = GROUPINGS[by]
        order = "key" if by == "day" else "calls DESC, key"  # days in date order
        sql = f"SELECT {key} AS key, {fields} FROM calls {where} GROUP BY key ORDER BY {order}"
        for row in db.query(sql, params):
            report["groups"].append({"key": row["key"] if row["key"] is not None else "(none)",
                                     **shape(row)})
    add_details(db, report, where, params, GROUPINGS[by] if by else None)
    if by == "feature":
        _add_prefix_stability(db, where, params, report["groups"])
    return report


def _add_prefix_stability(
    db: sqlite_utils.Database, where: str, params: list[Any], groups: list[dict[str, Any]]
) -> None:
    """Share of a feature's calls whose leading tokens match its most common prefix."""
    sql = f"""
        SELECT coalesce(feature, '(none)') AS key, prefix_hash, count(*) AS n
        FROM calls {where} {"AND" if where else "WHERE"} prefix_hash IS NOT NULL
        GROUP BY key, prefix_hash
    """
    best: dict[str, tuple[int, int, int]] = {}
    for row in db.query(sql, params):
        top, total, distinct = best.get(row["key"], (0, 0, 0))
        best[row["key"]] = (max(top, row["n"]), total + row["n"], distinct + 1)
    for group in groups:
        top, total, distinct = best.get(group["key"], (0, 0, 0))
        group["prefix_stability"] = round(top / total, 4) if total else None
        group["distinct_prefixes"] = distinct
