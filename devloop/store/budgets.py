"""Budget reservations (the ``reservations`` table) and what a scope has spent (``calls``).

The rules (which budgets apply, periods, hard stops) live in devloop/gateway/admission.py;
this module holds only the statements, run as jobs on the single DB writer.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from devloop.store.calls import WriteJob

# A budget scope ("global", "tier:NAME", "feature:NAME", "key:NAME") as a condition on calls.
SCOPE_SQL = {"global": "1", "tier": "tier = ?", "feature": "feature = ?", "key": "key_id = ?"}


def period_bounds(period: str, now: float | None = None) -> tuple[float, float]:
    """Calendar periods in UTC: [start, end) as epoch seconds."""
    t = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, end = day, day + timedelta(days=1)
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    return start.timestamp(), end.timestamp()


def spent_since(conn: sqlite3.Connection, scope: str, start: float) -> float:
    """What the scope's calls cost from ``start`` (epoch seconds) on."""
    kind, _, name = scope.partition(":")
    args: list[object] = [start] + ([name] if kind != "global" else [])
    row = conn.execute(f"SELECT coalesce(sum(cost_usd), 0) FROM calls WHERE ts >= ? AND "
                       f"{SCOPE_SQL[kind]}", args).fetchone()
    return float(row[0])


def held_since(conn: sqlite3.Connection, scope: str, start: float) -> float:
    """What unsettled reservations made from ``start`` on hold against the scope."""
    row = conn.execute(
        "SELECT coalesce(sum(usd), 0) FROM reservations WHERE settled = 0 AND ts >= ? "
        "AND (',' || scopes || ',') LIKE ?", (start, f"%,{scope},%")).fetchone()
    return float(row[0])


@dataclass(frozen=True, slots=True)
class BudgetLimit:
    scope: str
    usd: float
    period: str  # day | week | month


@dataclass(frozen=True, slots=True)
class Overrun:
    """The first budget a reservation would exceed, with what it already holds."""

    limit: BudgetLimit
    spent: float
    held: float
    period_end: float
    now: float


def reserve_job(limits: list[BudgetLimit], reservation_id: str, usd: float,
                stale_after_s: float) -> WriteJob:
    """Check every limit and, when all hold, insert the reservation, in one transaction.

    The job returns None once reserved, else the ``Overrun`` (and reserves nothing).
    Reservations older than ``stale_after_s`` stop holding budget.
    """

    def job(conn: sqlite3.Connection) -> Overrun | None:
        now = time.time()
        for limit in limits:
            start, end = period_bounds(limit.period, now)
            spent = spent_since(conn, limit.scope, start)
            held = held_since(conn, limit.scope, max(start, now - stale_after_s))
            if spent + held + usd > limit.usd + 1e-12:
                return Overrun(limit, spent, held, end, now)
        conn.execute("INSERT INTO reservations (id, ts, scopes, usd, settled) "
                     "VALUES (?, ?, ?, ?, 0)",
                     (reservation_id, now, ",".join(b.scope for b in limits), usd))
        return None

    return job


def delete_reservation_job(reservation_id: str) -> WriteJob:
    """Settling (with the ledger row) and releasing (on failure) both delete the hold."""

    def job(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))

    return job
