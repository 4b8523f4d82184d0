"""Budgets with hard stops, and rate limits.

Before a paid call its worst case (prompt tokens + max_tokens at the model's price) is
reserved in one write transaction on the single writer (BEGIN IMMEDIATE), checked against
what the period has already spent plus what is reserved and unsettled. After the call the
reservation is settled (replaced by the ledger row's actual cost) in the same transaction
that writes the row; on error or disconnect it is released.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from devloop.config import Budget, Profile
from devloop.store.writer import DbWriter
from devloop.tokens import count_tokens
from devloop.types import ChatRequest, CompletionRequest, EmbeddingRequest

WORST_CASE_OUTPUT_TOKENS = 4096  # reserved when a request sets no max_tokens
# A reservation older than this belongs to a call that cannot still be running (a process
# killed mid-call never settles it); it stops holding budget.
RESERVATION_TTL_S = 3600.0


def worst_case_prompt_tokens(req: ChatRequest | CompletionRequest | EmbeddingRequest) -> int:
    """An upper estimate of what the provider will bill as prompt tokens.

    Providers count with their own tokenizers (Claude's yields up to ~20% more tokens than
    cl100k) and add a few tokens per chat message for roles and separators.
    """
    counted = count_tokens(req.prompt_text())
    overhead = 4 * len(req.messages) + 3 if isinstance(req, ChatRequest) else 0
    return int(counted * 1.25) + 1 + overhead


class BudgetExceeded(Exception):
    def __init__(self, message: str, retry_after: int, code: str = "budget_exceeded") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code


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


def scope_applies(scope: str, tier: str, feature: str | None, key_id: str | None) -> bool:
    if scope == "global":
        return True
    kind, _, name = scope.partition(":")
    return {"tier": tier, "feature": feature, "key": key_id}.get(kind) == name


SCOPE_SQL = {"global": "1", "tier": "tier = ?", "feature": "feature = ?", "key": "key_id = ?"}


@dataclass(slots=True)
class Reservation:
    id: str
    usd: float


class Budgets:
    def __init__(self, profile: Profile, writer: DbWriter) -> None:
        self.budgets = list(profile.budgets)
        self.writer = writer
        self.key_budgets: dict[str, Budget] = {}
        self.rpm: dict[str, int] = {rl.scope: rl.rpm for rl in profile.rate_limits if rl.rpm}
        self.concurrency: dict[str, int] = {
            rl.scope: rl.max_concurrent for rl in profile.rate_limits if rl.max_concurrent
        }
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._active: dict[str, int] = defaultdict(int)

    def applicable(self, tier: str, feature: str | None, key_id: str | None) -> list[Budget]:
        found = [b for b in self.budgets if scope_applies(b.scope, tier, feature, key_id)]
        if key_id and key_id in self.key_budgets:
            found.append(self.key_budgets[key_id])
        return found

    async def reserve(self, tier: str, feature: str | None, key_id: str | None,
                      worst_usd: float | None) -> Reservation | None:
        budgets = self.applicable(tier, feature, key_id)
        if not budgets:
            return None
        res = Reservation(uuid.uuid4().hex, worst_usd or 0.0)
        scopes = ",".join(b.scope for b in budgets)

        def check_and_reserve(conn: sqlite3.Connection) -> None:
            now = time.time()
            for b in budgets:
                start, end = period_bounds(b.period, now)
                kind, _, name = b.scope.partition(":")
                args: list[object] = [start] + ([name] if kind != "global" else [])
                spent = conn.execute(
                    f"SELECT coalesce(sum(cost_usd), 0) FROM calls WHERE ts >= ? AND "
                    f"{SCOPE_SQL[kind]}", args).fetchone()[0]
                held = conn.execute(
                    "SELECT coalesce(sum(usd), 0) FROM reservations WHERE settled = 0 AND ts >= ? "
                    "AND (',' || scopes || ',') LIKE ?",
                    (max(start, now - RESERVATION_TTL_S), f"%,{b.scope},%")).fetchone()[0]
                if spent + held + res.usd > b.usd + 1e-12:
                    raise BudgetExceeded(
                        f"budget {b.scope} ${b.usd:.2f}/{b.period} would be exceeded: spent "
                        f"${spent:.4f}, reserved ${held:.4f}, this call up to ${res.usd:.4f}",
                        max(1, int(end - now)))
            conn.execute("INSERT INTO reservations (id, ts, scopes, usd, settled) "
                         "VALUES (?, ?, ?, ?, 0)", (res.id, now, scopes, res.usd))

        await self.writer.run(check_and_reserve)
        return res

    @staticmethod
    def settle_sql(res: Reservation | None) -> tuple[str, tuple[str]] | None:
        """The statement that settles a reservation, run with the ledger insert."""
        if res is None:
            return None
        return "DELETE FROM reservations WHERE id = ?", (res.id,)

    def release(self, res: Reservation | None) -> None:
        if res is not None:
            self.writer.submit(lambda c: c.execute("DELETE FROM reservations WHERE id = ?",
                                                   (res.id,)))

    # -- rate limits (in memory: one process serves the endpoint) ------------------------
    def acquire_rate(self, scopes: list[str]) -> None:
        now = time.monotonic()
        for scope in scopes:
            limit = self.rpm.get(scope)
            if limit:
                recent = self._recent[scope]
                while recent and now - recent[0] >= 60:
                    recent.popleft()
                if len(recent) >= limit:
                    raise BudgetExceeded(f"rate limit {scope}: {limit} requests per minute",
                                         max(1, int(60 - (now - recent[0])) + 1),
                                         "rate_limit_exceeded")
            cap = self.concurrency.get(scope)
            if cap and self._active[scope] >= cap:
                raise BudgetExceeded(f"rate limit {scope}: {cap} concurrent requests", 1,
                                     "rate_limit_exceeded")
        for scope in scopes:
            if scope in self.rpm:
                self._recent[scope].append(now)
            self._active[scope] += 1

    def release_rate(self, scopes: list[str]) -> None:
        for scope in scopes:
            self._active[scope] = max(0, self._active[scope] - 1)
