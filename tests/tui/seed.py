"""Deterministic ledger rows (and ladder rows) for the TUI's tests, snapshots and benchmark."""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from devloop.store.calls import CallRecord
from devloop.store.db import open_db

# Wednesday 2025-11-19 12:00 UTC: "today" and "this week" both hold seeded calls.
FIXED_NOW = 1763553600.0
PRODUCTION = "anthropic/claude-sonnet-4-5"
SONNET_IN, SONNET_OUT = 3e-6, 15e-6  # USD per token
TIERS = [  # tier, backend, model, weight
    ("local", "ollama", "qwen2.5-coder:1.5b", 45),
    ("embedded", "embedded", "smollm2-135m", 20),
    ("shared", "openai", "Qwen/Qwen2.5-Coder-7B-Instruct", 15),
    ("frontier", "litellm", PRODUCTION, 10),
    ("cache", "cache", "qwen2.5-coder:1.5b", 10),
]
FEATURES = [("continue", 35), ("continue-autocomplete", 30), ("commit-msg", 15),
            ("eval-commit-message", 5), (None, 15)]
REASONS = {
    "local": "route 4: default -> local",
    "embedded": "route 4: default -> local; local failed (unreachable); served by embedded",
    "shared": "route 3: complexity high -> shared",
    "frontier": "route 2: feature eval-* -> frontier",
}


def make_record(rng: random.Random, ts: float) -> CallRecord:
    tier, backend, model, _ = rng.choices(TIERS, [t[3] for t in TIERS])[0]
    feature = rng.choices([f for f, _ in FEATURES], [w for _, w in FEATURES])[0]
    endpoint = "completions" if feature == "continue-autocomplete" else "chat"
    prompt = rng.randint(40, 2400)
    completion = rng.randint(4, 64) if endpoint == "completions" else rng.randint(20, 400)
    counterfactual = prompt * SONNET_IN + completion * SONNET_OUT
    cache = "hit" if tier == "cache" else rng.choice(["miss", "miss", "miss", "bypass"])
    if tier == "cache":
        tier, reason = "local", REASONS["local"] + "; answered from cache"
    else:
        reason = REASONS[tier]
    cost = counterfactual if tier == "frontier" else 0.0
    status, error = 200, None
    if rng.random() < 0.02:
        status, error, prompt, completion = 502, "upstream error: connection reset", 0, 0
        cost, counterfactual = 0.0, None
    latency = {"local": 350.0, "embedded": 900.0, "shared": 1200.0, "frontier": 2500.0}[tier]
    latency = 3.0 if cache == "hit" else latency * rng.uniform(0.4, 2.2)
    return CallRecord(
        request_id=f"req-{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}", endpoint=endpoint,
        tier=tier, backend=backend, model=model, route_reason=reason, cache=cache,  # type: ignore[arg-type]
        feature=feature, user="dev", prompt_tokens=prompt, completion_tokens=completion,
        latency_ms=round(latency, 1), ttft_ms=round(latency / 3, 1) if endpoint == "chat" else None,
        status=status, error=error, cost_usd=cost, counterfactual_usd=counterfactual,
        saved_usd=None if counterfactual is None else counterfactual - cost,
        production_model=PRODUCTION, prefix_hash=f"{rng.getrandbits(16):04x}", ts=ts,
    )


def seed_calls(db_path: Path, count: int, now: float = FIXED_NOW, days: float = 30.0,
               seed: int = 7) -> None:
    """``count`` calls spread over the ``days`` before ``now``, oldest first (ids follow time)."""
    rng = random.Random(seed)
    stamps = sorted(now - rng.random() * days * 86400 for _ in range(count))
    rows = [make_record(rng, ts).row() for ts in stamps]
    db = open_db(db_path)
    try:
        cols = list(rows[0]) if rows else []
        sql = (f"INSERT INTO calls ({', '.join(f'[{c}]' for c in cols)}) "
               f"VALUES ({', '.join('?' for _ in cols)})")
        with db.conn:
            db.conn.executemany(sql, [tuple(r.values()) for r in rows])
    finally:
        db.conn.close()


def _insert(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    cols = ", ".join(f"[{k}]" for k in row)
    conn.execute(f"INSERT INTO [{table}] ({cols}) VALUES ({', '.join('?' for _ in row)})",
                 tuple(row.values()))


def seed_ladder(db_path: Path, evalset: Path, now: float = FIXED_NOW) -> None:
    """For ``evalset``'s current prompt: checks, a passing eval and its promotion; plus an
    older failing run of an earlier prompt (rows as `devloop check`/`devloop eval` write them)."""
    from devloop.evals.evalset import load_evalset
    from devloop.tui.ladder import display_path

    es = load_evalset(evalset)
    file = display_path(evalset)
    db = open_db(db_path)
    conn = db.conn
    try:
        with conn:
            stages = {
                "draft": {"status": "pass", "pass_rate": 0.8, "would_cost_usd": 0.0123},
                "compression": {"status": "warn", "recommendation": "skip",
                                "saved_usd_per_1k_calls": 0.42},
                "cache_order": {"status": "pass", "cacheable_prefix_tokens": 1180,
                                "min_cacheable_tokens": 1024},
            }
            for i, (stage, detail) in enumerate(stages.items()):
                _insert(conn, "prompt_checks", {
                    "prompt_hash": es.prompt_hash, "file": file, "name": es.name,
                    "stage": stage, "status": detail["status"],
                    "result_json": json.dumps(detail), "created": now - 3600 + i})
            runs = [("run-old", now - 2 * 86400, "0" * 64, 2, "fail", 0.0311),
                    ("run-new", now - 1800, es.prompt_hash, len(es.cases), "pass", 0.0187)]
            for run_id, ts, prompt_hash, passing, status, cost in runs:
                _insert(conn, "eval_runs", {
                    "id": run_id, "ts": ts, "evalset": es.name, "file": file,
                    "prompt_hash": prompt_hash, "model": PRODUCTION, "threshold": es.threshold,
                    "pass_rate": passing / len(es.cases), "cases": len(es.cases),
                    "passed": passing, "failed": len(es.cases) - passing, "errors": 0,
                    "cached_cases": int(run_id == "run-new"), "cost_usd": cost,
                    "estimate_usd": cost * 3, "status": status, "batch": 0})
                for j, case in enumerate(es.cases):
                    ok = j < passing
                    cached = run_id == "run-new" and j == 0
                    _insert(conn, "eval_results", {
                        "run_id": run_id, "ts": ts, "evalset": es.name,
                        "prompt_hash": prompt_hash, "case_hash": es.case_hash(case),
                        "case_id": case.id, "model": PRODUCTION, "pass": int(ok),
                        "score": 1.0 if ok else 0.0,
                        "reason": "" if ok else "regex ^feat: did not match the first line",
                        "cost_usd": 0.0 if cached else 0.0047, "cached": int(cached)})
            _insert(conn, "promotions", {
                "prompt_hash": es.prompt_hash, "model": PRODUCTION, "evalset": es.name,
                "file": file, "run_id": "run-new", "pass_rate": 1.0,
                "threshold": es.threshold, "ts": now - 1790})
    finally:
        conn.close()
