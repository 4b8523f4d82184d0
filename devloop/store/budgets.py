"""Budget reservations (the ``reservations`` table) and what a scope has spent (``calls``).

The rules (which budgets apply, periods, hard stops) live in devloop/gateway/admission.py;
this module holds only the statements, run as jobs on the single DB writer.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, tzinfo

from devloop import periods
from devloop.store.calls import WriteJob

# A budget scope ("global", "tier:NAME", "feature:NAME", "key:NAME", "user:NAME") as a
# condition on calls. `=` on TEXT compares bytes (BINARY collation): exact names, no
# patterns, no case folding.
SCOPE_SQL = {"global": "1", "tier": "tier = ?", "feature": "feature = ?", "key": "key_id = ?",
             "user": "user = ?"}
# Reservations list their scopes joined by a space: a scope never holds whitespace
# (config.Budget refuses it), so instr() on " scope " matches exactly one scope.
SCOPE_SEP = " "


def period_bounds(period: str, now: float | None = None, tz: tzinfo | None = UTC
                  ) -> tuple[float, float]:
    """Calendar periods in ``tz`` (the ``timezone`` setting; None: machine local):
    [start, end) as epoch seconds."""
    return periods.period_bounds(period, now, tz)


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
        "AND instr(? || scopes || ?, ?) > 0",  # exact: no LIKE wildcards, no case folding
        (start, SCOPE_SEP, SCOPE_SEP, f"{SCOPE_SEP}{scope}{SCOPE_SEP}")).fetchone()
    return float(row[0])


@dataclass(frozen=True, slots=True)
class BudgetLimit:
    scope: str
    usd: float
    period: str  # day | week | month
    since: float = 0.0  # a key's creation: an earlier key of the same name is not its spend


@dataclass(frozen=True, slots=True)
class Overrun:
    """The first budget a reservation would exceed, with what it already holds."""

    limit: BudgetLimit
    spent: float
    held: float
    period_end: float
    now: float


def reserve_job(limits: list[BudgetLimit], reservation_id: str, usd: float,
                stale_after_s: float, tz: tzinfo | None = UTC) -> WriteJob:
    """Check every limit and, when all hold, insert the reservation, in one transaction.

    The job returns None once reserved, else the ``Overrun`` (and reserves nothing).
    Reservations older than ``stale_after_s`` stop holding budget.
    """

    def job(conn: sqlite3.Connection) -> Overrun | None:
        now = time.time()
        for limit in limits:
            start, end = period_bounds(limit.period, now, tz)
            spent = spent_since(conn, limit.scope, max(start, limit.since))
            held = held_since(conn, limit.scope, max(start, now - stale_after_s))
            if spent + held + usd > limit.usd + 1e-12:
                return Overrun(limit, spent, held, end, now)
        conn.execute("INSERT INTO reservations (id, ts, scopes, usd, settled) "
                     "VALUES (?, ?, ?, ?, 0)",
                     (reservation_id, now, SCOPE_SEP.join(b.scope for b in limits), usd))
        return None

    return job


def delete_reservation_job(reservation_id: str) -> WriteJob:
    """Settling (with the ledger row) and releasing (on failure) both delete the hold."""

    def job(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))

    return job
