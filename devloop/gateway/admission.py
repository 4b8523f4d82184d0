"""Admission: budgets with hard stops, rate limits, and reservations of worst-case spend.

Before a paid call its worst case (prompt tokens + max_tokens at the model's price) is
reserved in one write transaction on the single writer (BEGIN IMMEDIATE), checked against
what the period has already spent plus what is reserved and unsettled. After the call the
reservation is settled (replaced by the ledger row's actual cost) in the same transaction
that writes the row; on error or disconnect it is released. The statements live in
devloop/store/budgets.py; ``Admission`` is the gateway's stage that applies all of it.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, tzinfo

from devloop import instrument
from devloop.config import Budget, Profile
from devloop.gateway.prepared import Prepared
from devloop.pricing import Pricing
from devloop.store.budgets import BudgetLimit, delete_reservation_job, reserve_job
from devloop.store.calls import WriteJob
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


def scope_applies(scope: str, tier: str, feature: str | None, key_id: str | None,
                  user: str | None = None) -> bool:
    """Exact match: names compare as they are, no patterns, no case folding."""
    if scope == "global":
        return True
    kind, _, name = scope.partition(":")
    return {"tier": tier, "feature": feature, "key": key_id, "user": user}.get(kind) == name


def usd(value: float) -> str:
    """Budget amounts with every digit they have ($0.005/day, not $0.01/day)."""
    if value >= 1:
        return f"${value:,.2f}"
    return "$0" if value == 0 else f"${value:.8f}".rstrip("0")


@dataclass(slots=True)
class Reservation:
    id: str
    usd: float


class Budgets:
    """The profile's budgets and rate limits, plus each team key's own (``set_key_limits``)."""

    def __init__(self, profile: Profile, writer: DbWriter, tz: tzinfo | None = UTC) -> None:
        self.budgets = list(profile.budgets)
        self.writer = writer
        self.tz = tz  # budget periods are calendar periods in the `timezone` setting's zone
        self.key_budgets: dict[str, Budget] = {}
        # key name -> when its current key was created: a revoked key's spend is not its own
        self.key_since: dict[str, float] = {}
        self._profile_rpm = {rl.scope: rl.rpm for rl in profile.rate_limits if rl.rpm}
        self._profile_concurrency = {
            rl.scope: rl.max_concurrent for rl in profile.rate_limits if rl.max_concurrent
        }
        self.rpm: dict[str, int] = dict(self._profile_rpm)
        self.concurrency: dict[str, int] = dict(self._profile_concurrency)
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._active: dict[str, int] = defaultdict(int)

    def set_key_limits(self, rpm: dict[str, int], concurrency: dict[str, int],
                       key_budgets: dict[str, Budget],
                       key_since: dict[str, float] | None = None) -> None:
        """Replace the keys' limits (scopes ``key:NAME``; budgets by key name). A key's own
        rpm or concurrency overrides the profile's for the same scope; the rest stay."""
        self.rpm = {**self._profile_rpm, **rpm}
        self.concurrency = {**self._profile_concurrency, **concurrency}
        self.key_budgets = dict(key_budgets)
        self.key_since = dict(key_since or {})

    def concurrency_limit(self, scope: str) -> int | None:
        return self.concurrency.get(scope)

    def applicable(self, tier: str, feature: str | None, key_id: str | None,
                   user: str | None = None) -> list[Budget]:
        found = [b for b in self.budgets if scope_applies(b.scope, tier, feature, key_id, user)]
        if key_id and key_id in self.key_budgets:
            found.append(self.key_budgets[key_id])
        return found

    async def reserve(self, tier: str, feature: str | None, key_id: str | None,
                      worst_usd: float | None, user: str | None = None) -> Reservation | None:
        budgets = self.applicable(tier, feature, key_id, user)
        if not budgets:
            return None
        res = Reservation(uuid.uuid4().hex, worst_usd or 0.0)
        limits = [BudgetLimit(b.scope, b.usd, b.period, self._since(b.scope)) for b in budgets]
        over = await self.writer.run(reserve_job(limits, res.id, res.usd, RESERVATION_TTL_S,
                                                 self.tz))
        if over is not None:
            b = over.limit
            raise BudgetExceeded(
                f"budget {b.scope} {usd(b.usd)}/{b.period} would be exceeded: spent "
                f"{usd(over.spent)}, reserved {usd(over.held)}, this call up to {usd(res.usd)}",
                max(1, int(over.period_end - over.now + 0.999)))
        return res

    def _since(self, scope: str) -> float:
        kind, _, name = scope.partition(":")
        return self.key_since.get(name, 0.0) if kind == "key" else 0.0

    @staticmethod
    def settle_job(res: Reservation | None) -> WriteJob | None:
        """The job that settles a reservation, run in the ledger row's transaction."""
        return None if res is None else delete_reservation_job(res.id)

    def release(self, res: Reservation | None) -> None:
        if res is not None:
            self.writer.submit(delete_reservation_job(res.id))

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


class Admission:
    """The gateway's admission stage: rate limits first, then a reservation of the call's
    worst-case cost against every budget that applies (again for a paid fallback tier)."""

    def __init__(self, profile: Profile, pricing: Pricing, budgets: Budgets) -> None:
        self.profile, self.pricing, self.budgets = profile, pricing, budgets

    async def admit(self, prep: Prepared, tier: str) -> None:
        ctx = prep.ctx
        scopes = ["global", f"tier:{tier}"]
        if ctx.feature:
            scopes.append(f"feature:{ctx.feature}")
        if ctx.key_id:
            scopes.append(f"key:{ctx.key_id}")
        if ctx.user:
            scopes.append(f"user:{ctx.user}")
        self.budgets.acquire_rate(scopes)
        prep.rate_scopes = scopes
        try:
            await self.reserve(prep, tier)
        except BudgetExceeded:
            self.budgets.release_rate(scopes)
            raise

    async def admit_fallback(self, prep: Prepared, tier: str) -> None:
        """A fallback tier may have budgets the chosen tier had not."""
        if tier != prep.decision.tier and prep.reservation is None:
            model = self.profile.tiers[tier].model
            if instrument.is_paid(tier, model, self.pricing):  # sent and reserved at one limit
                prep.req = instrument.with_output_limit(prep.req, self.profile)
            await self.reserve(prep, tier)

    async def reserve(self, prep: Prepared, tier: str) -> None:
        if not self.budgets.applicable(tier, prep.ctx.feature, prep.ctx.key_id, prep.ctx.user):
            return
        model = self.profile.tiers[tier].model if tier != prep.decision.tier else prep.decision.model
        embedding = isinstance(prep.req, EmbeddingRequest)
        # the limit the request is sent with (prepare sets one on every paid call)
        limit = 0 if embedding else prep.req.token_limit() or WORST_CASE_OUTPUT_TOKENS
        worst = instrument.worst_case_cost(self.pricing, tier, model, prep.req,
                                           worst_case_prompt_tokens(prep.req), limit)
        if worst is None:  # a hard stop cannot hold for a call whose price is unknown
            raise BudgetExceeded(
                f"budget applies to tier {tier} but {model!r} has no known price; add it under "
                f"`prices` in the profile", 3600)
        if worst == 0:
            return
        prep.reservation = await self.budgets.reserve(tier, prep.ctx.feature, prep.ctx.key_id,
                                                      worst, prep.ctx.user)

    def release_rate(self, prep: Prepared) -> None:
        """The call ended (or never started): its rate-limit slots are free again."""
        self.budgets.release_rate(prep.rate_scopes)

    def release_reservation(self, prep: Prepared) -> None:
        """The call failed: what it reserved is no longer held."""
        self.budgets.release(prep.reservation)
