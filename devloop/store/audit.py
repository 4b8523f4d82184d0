"""Judge sampling's table (``audit_samples``): queue, verdicts and the `devloop audit` report."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from devloop.store.calls import WriteJob

INSERT_SAMPLE = ("INSERT OR IGNORE INTO audit_samples (request_id, ts, kind, route, feature, "
                 "tier, model, request_json, response_text, status, cost_usd) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0)")


@dataclass(slots=True)
class Sample:
    request_id: str
    kind: str
    route: str | None
    feature: str | None
    tier: str | None
    model: str | None
    request_json: str
    response_text: str


def sample_job(s: Sample) -> WriteJob:
    """Queue a sampled call (its redacted bodies) and mark its ledger row audit_sampled=1."""
    values = (s.request_id, time.time(), s.kind, s.route, s.feature, s.tier, s.model,
              s.request_json, s.response_text)

    def job(conn: sqlite3.Connection) -> None:
        conn.execute(INSERT_SAMPLE, values)
        conn.execute("UPDATE calls SET audit_sampled = 1 WHERE request_id = ?",
                     (s.request_id,))

    return job


def pending(conn: sqlite3.Connection, limit: int = 20) -> list[Sample]:
    rows = conn.execute(
        "SELECT request_id, kind, route, feature, tier, model, request_json, response_text "
        "FROM audit_samples WHERE status = 'pending' ORDER BY ts LIMIT ?", (limit,))
    return [Sample(*row) for row in rows]


def verdict_job(request_id: str, agree: bool | None, error: str | None, replay_text: str | None,
                judge_text: str | None, cost_usd: float | None) -> WriteJob:
    status = "error" if agree is None else "judged"
    values = (status, None if agree is None else int(agree), error, replay_text, judge_text,
              cost_usd, time.time(), request_id)

    def job(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE audit_samples SET status = ?, agree = ?, error = ?, replay_text = ?, "
                     "judge_text = ?, cost_usd = ?, judged_ts = ? WHERE request_id = ?", values)

    return job


def spent_since(conn: sqlite3.Connection, since_ts: float) -> float:
    """What replays and judges cost since ``since_ts`` (unknown prices count as 0 here:
    the budget then caps by the known part)."""
    row = conn.execute("SELECT coalesce(sum(cost_usd), 0) FROM audit_samples "
                       "WHERE judged_ts >= ?", (since_ts,)).fetchone()
    return float(row[0] or 0.0)


def audit_report(conn: sqlite3.Connection, since_ts: float | None = None) -> list[dict[str, Any]]:
    """One row per (route, feature): sampled, judged, agreement_rate, errors, cost_usd."""
    where, params = ("WHERE ts >= ?", [since_ts]) if since_ts is not None else ("", [])
    sql = f"""
        SELECT coalesce(route, '(none)') AS route, coalesce(feature, '(none)') AS feature,
               count(*) AS sampled, sum(status = 'judged') AS judged,
               sum(status = 'judged' AND agree = 1) AS agreed, sum(status = 'error') AS errors,
               sum(cost_usd) AS cost_usd, sum(kind = 'semantic') AS semantic,
               sum(kind = 'semantic' AND status = 'judged') AS semantic_judged,
               sum(kind = 'semantic' AND status = 'judged' AND agree = 0) AS semantic_wrong
        FROM audit_samples {where} GROUP BY 1, 2 ORDER BY 1, 2"""
    out = []
    for (route, feature, sampled, judged, agreed, errors, cost, _sem, sem_judged,
         sem_wrong) in conn.execute(sql, params):
        out.append({
            "route": route, "feature": feature, "sampled": sampled, "judged": judged or 0,
            "agreement_rate": round(agreed / judged, 4) if judged else None,
            "errors": errors or 0, "cost_usd": round(cost or 0.0, 6),
            "semantic_judged": sem_judged or 0,
            "semantic_false_positive_rate": (round((sem_wrong or 0) / sem_judged, 4)
                                             if sem_judged else None),
        })
    return out


def semantic_false_positives(conn: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """feature -> (judged semantic hits, wrong ones): the measured false-positive rate."""
    try:
        rows = conn.execute(
            "SELECT coalesce(feature, '(none)'), count(*), sum(agree = 0) FROM audit_samples "
            "WHERE kind = 'semantic' AND status = 'judged' GROUP BY 1").fetchall()
    except sqlite3.OperationalError:
        return {}
    return {f: (int(n), int(w or 0)) for f, n, w in rows}
