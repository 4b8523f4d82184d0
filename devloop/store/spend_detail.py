"""The ledger figures issue 12 adds to `devloop spend`: provider-cache reads and writes and
their hit rate, refused and failed calls (and what failures cost), retries, output-token
p50/p95, the production models the rows were priced at, and the rows the live cache-order
diagnosis reads (with stored prompt bodies where there are any). Escalations are counted in
SQL by spend.py, beside their rate and cost.

Calendar days are computed in the configured zone by a SQL function registered on the
connection (``devloop_day(ts)``), so `spend --by day` groups local evenings correctly.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from datetime import tzinfo
from typing import Any

import sqlite_utils

from devloop.periods import day_key
from devloop.spend_analysis import output_token_percentiles, provider_cache_hit_rate, retries

OWN_ORIGINS_SQL = "coalesce(origin, 'client') != 'client'"
# Tiers whose calls never reach a provider's prompt cache: left out of its hit rate and of
# the diagnosis (the TUI's dashboard figure, store/prompt_cache_week.py, uses the same).
NO_PROVIDER_CACHE_TIERS = ("local", "embedded")
NO_PROVIDER_CACHE_SQL = ", ".join(f"'{t}'" for t in NO_PROVIDER_CACHE_TIERS)
DETAIL_COLUMNS = ("ts, feature, tier, model, user, session, status, error, cost_usd, "
                  "prompt_tokens, completion_tokens, cached_tokens, cache_read_tokens, "
                  "cache_write_tokens, cache_write_ttl, prefix_hash, parent_request_id, "
                  "production_model, origin, request_id, request_hash")


def register_day(db: sqlite_utils.Database | sqlite3.Connection, tz: tzinfo | None) -> None:
    """``devloop_day(ts)``: the date of ``ts`` in ``tz`` (None: machine local)."""
    conn = db if isinstance(db, sqlite3.Connection) else db.conn
    conn.create_function("devloop_day", 1,
                         lambda ts: None if ts is None else day_key(float(ts), tz),
                         deterministic=True)


def _rows(db: sqlite_utils.Database, where: str, params: list[Any], key_sql: str | None
          ) -> list[dict[str, Any]]:
    key = key_sql or "'(all)'"
    sql = f"SELECT {key} AS _key, {DETAIL_COLUMNS} FROM calls {where}"
    return list(db.query(sql, params))


def detail(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The new figures for one set of rows (a group, or the totals)."""
    answered = [r for r in rows if (r["status"] or 200) == 200]
    read = sum(int(r["cache_read_tokens"] or r["cached_tokens"] or 0) for r in answered)
    write = sum(int(r["cache_write_tokens"] or 0) for r in answered)
    refused = [r for r in rows if r["status"] == 429]
    failed = [r for r in rows if (r["status"] or 200) >= 400 and r["status"] != 429]
    paid = [r for r in answered if r["origin"] in (None, "client")]
    models = sorted({str(r["production_model"]) for r in rows if r["production_model"]})
    return {
        "cache_read_tokens": read,
        "cache_write_tokens": write,
        "provider_cache_hit_rate": provider_cache_hit_rate(
            {**r, "cache_read_tokens": r["cache_read_tokens"] or r["cached_tokens"]}
            for r in answered if r["tier"] not in NO_PROVIDER_CACHE_TIERS),
        "refused_calls": len(refused),
        "failed_calls": len(failed),
        "failed_cost_usd": round(sum(float(r["cost_usd"] or 0) for r in failed), 10),
        "retries": retries(rows),
        "own_calls": len(rows) - len([r for r in rows if r["origin"] in (None, "client")]),
        **output_token_percentiles(paid or answered),
        "production_models": models,
    }


def add_details(db: sqlite_utils.Database, report: dict[str, Any], where: str,
                params: list[Any], key_sql: str | None) -> None:
    """Adds the new figures to ``report["totals"]`` and to each of ``report["groups"]``
    (grouped by ``key_sql``, the same expression the report grouped by)."""
    all_rows = _rows(db, where, params, key_sql)
    report["totals"].update(detail(all_rows))
    if key_sql is None:
        return
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in all_rows:
        groups["(none)" if r["_key"] is None else str(r["_key"])].append(r)
    for group in report["groups"]:
        group.update(detail(groups.get(str(group["key"]), [])))


def diagnosis_rows(db: sqlite_utils.Database, since_ts: float | None) -> list[dict[str, Any]]:
    """Paid, answered client calls, oldest first, each with its prompt text where the
    body was stored (``store_bodies: true``)."""
    where = ["status = 200", "cache != 'hit'", "coalesce(cost_usd, 1) > 0",
             f"tier NOT IN ({NO_PROVIDER_CACHE_SQL})", f"NOT ({OWN_ORIGINS_SQL})"]
    params: list[Any] = []
    if since_ts is not None:
        where.append("ts >= ?")
        params.append(since_ts)
    sql = f"SELECT {DETAIL_COLUMNS} FROM calls WHERE {' AND '.join(where)} ORDER BY ts"
    rows = list(db.query(sql, params))
    bodies = _bodies(db.conn, [r["request_id"] for r in rows])
    for r in rows:
        r["cache_read_tokens"] = r["cache_read_tokens"] or r["cached_tokens"]
        r["text"] = bodies.get(r["request_id"])
    return rows


def _bodies(conn: sqlite3.Connection, ids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        try:
            found = conn.execute(
                f"SELECT request_id, request_json FROM call_bodies WHERE request_id IN "
                f"({', '.join('?' * len(chunk))})", chunk).fetchall()
        except sqlite3.OperationalError:
            return out
        for rid, body in found:
            text = prompt_text(body)
            if text is not None:
                out[rid] = text
    return out


def prompt_text(request_json: str) -> str | None:
    """The prompt as the provider reads it in order: tools, then each message's text."""
    try:
        req = json.loads(request_json)
    except (TypeError, json.JSONDecodeError):
        return None
    if not isinstance(req, dict):
        return None
    parts = [json.dumps(req["tools"], sort_keys=True)] if req.get("tools") else []
    for m in req.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        parts.append(str(content or ""))
    return "\n".join(parts)

