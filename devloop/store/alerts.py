"""The alert rules' reads of the ledger (and of ``audit_samples``), and ``alerts_fired``."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from devloop.store.calls import WriteJob


@dataclass(slots=True)
class Window:
    calls: int
    cost_usd: float
    hits: int
    errors: int
    escalations: int
    cache_read: int
    cache_input: int  # input tokens of the calls that reported provider-cache figures

    @property
    def cache_hit_rate(self) -> float | None:
        return self.hits / self.calls if self.calls else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None

    @property
    def escalation_rate(self) -> float | None:
        first = self.calls - self.escalations
        return self.escalations / first if first > 0 else None

    @property
    def provider_cache_hit_rate(self) -> float | None:
        return self.cache_read / self.cache_input if self.cache_input else None


def window(conn: sqlite3.Connection, t0: float, t1: float) -> Window:
    row = conn.execute(
        """SELECT count(*), coalesce(sum(cost_usd), 0), coalesce(sum(cache = 'hit'), 0),
                  coalesce(sum(status >= 500), 0),
                  coalesce(sum(parent_request_id IS NOT NULL), 0),
                  coalesce(sum(CASE WHEN cache_read_tokens IS NOT NULL
                               THEN cache_read_tokens END), 0),
                  coalesce(sum(CASE WHEN cache_read_tokens IS NOT NULL
                               THEN prompt_tokens + coalesce(cache_write_tokens, 0) END), 0)
           FROM calls WHERE ts >= ? AND ts < ?""", (t0, t1)).fetchone()
    return Window(*[int(v) if i != 1 else float(v) for i, v in enumerate(row)])


def daily_costs(conn: sqlite3.Connection, now: float, days: int) -> list[float]:
    """Spend in each of the ``days`` 24-hour windows before the current one (newest first)."""
    return [window(conn, now - 86400 * (d + 1), now - 86400 * d).cost_usd
            for d in range(1, days + 1)]


def spend_by(conn: sqlite3.Connection, column: str, t0: float, t1: float) -> list[tuple[str, float]]:
    assert column in ("user", "feature")
    rows = conn.execute(f"SELECT [{column}], sum(cost_usd) FROM calls WHERE ts >= ? AND ts < ? "
                        f"AND [{column}] IS NOT NULL GROUP BY 1", (t0, t1))
    return [(str(k), float(v or 0.0)) for k, v in rows]


def output_tokens(conn: sqlite3.Connection, t0: float, t1: float) -> list[int]:
    rows = conn.execute("SELECT completion_tokens FROM calls WHERE ts >= ? AND ts < ? "
                        "AND status = 200 AND cache != 'hit' ORDER BY completion_tokens",
                        (t0, t1))
    return [int(r[0] or 0) for r in rows]


def judge_agreement(conn: sqlite3.Connection, t0: float, t1: float) -> tuple[int, int]:
    """(judged, agreed) among the verdicts given in the window."""
    try:
        row = conn.execute("SELECT count(*), coalesce(sum(agree = 1), 0) FROM audit_samples "
                           "WHERE status = 'judged' AND judged_ts >= ? AND judged_ts < ?",
                           (t0, t1)).fetchone()
    except sqlite3.OperationalError:
        return 0, 0
    return int(row[0]), int(row[1])


def sent_recently(conn: sqlite3.Connection, rule: str, scope: str, now: float) -> bool:
    """Whether the webhook got this (rule, scope) in the last 24 hours (no repeats)."""
    try:
        row = conn.execute("SELECT 1 FROM alerts_fired WHERE rule = ? AND scope = ? AND sent = 1 "
                           "AND fired_ts >= ?", (rule, scope, now - 86400)).fetchone()
    except sqlite3.OperationalError:
        return False
    return row is not None


def fired_job(alerts: list[dict[str, Any]], sent: bool) -> WriteJob:
    now = time.time()
    rows = [(a["rule"], a["scope"], a["since_ts"], a["value"], a["threshold"], a["message"],
             now, int(sent)) for a in alerts]

    def job(conn: sqlite3.Connection) -> None:
        conn.executemany("INSERT OR REPLACE INTO alerts_fired (rule, scope, since, value, "
                         "threshold, message, fired_ts, sent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         rows)

    return job
