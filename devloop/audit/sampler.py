"""Choosing calls for the judge (the profile's ``audit: {sample: ...}``), after metering.

Only locally served calls (and semantic-cache hits) are sampled; a sampled call's request
and answer are stored, redacted, in ``audit_samples`` (bodies are kept for sampled calls
only) and its ledger row gets ``audit_sampled = 1``. When the sampling budget for the
period is spent, nothing more is sampled until the next period.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any

from devloop.store.audit import Sample, sample_job, spent_since
from devloop.store.bodies import response_text

# The gateway's types are Any here: the gateway imports this module (no import cycle).
Gateway = Prepared = CallResult = Any
SAMPLED_TIERS = ("local", "embedded", "shared")
PERIOD_SECONDS = {"day": 86400, "week": 7 * 86400, "month": 30 * 86400}
# API-key-like strings, redacted from stored bodies by default.
SECRET_PATTERNS = (
    r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}",
    r"\bAKIA[0-9A-Z]{16}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",
    r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",
    r"\bAIza[0-9A-Za-z_\-]{30,}",
    r"(?i:\bbearer\s+[A-Za-z0-9._\-]{16,})",
    r"(?i:\b(?:api[_-]?key|secret|token|password)\s*[:=]\s*['\"]?[^\s'\"]{8,})",
)
Redactor = Callable[[str], str]


def make_redactor(extra: list[str] | None = None) -> Redactor:
    pattern = re.compile("|".join(f"(?:{p})" for p in (*SECRET_PATTERNS, *(extra or []))))

    def redact(text: str) -> str:
        return pattern.sub("[REDACTED]", text)

    return redact


def period_start(period: str, now: float | None = None) -> float:
    return (now or time.time()) - PERIOD_SECONDS[period]


class Auditor:
    def __init__(self, gw: Gateway, rng: random.Random | None = None) -> None:
        self.gw = gw
        self.config = gw.profile.audit
        self.rng = rng or random.Random()
        self.redact: Redactor = make_redactor(self.config.redact if self.config else None)
        self._budget_checked = 0.0
        self._over_budget = False

    def over_budget(self) -> bool:
        """Sampling stops once replays and verdicts spent the period's ``usd`` (re-read
        from the store at most every 10 s)."""
        cfg = self.config
        if cfg is None:
            return True
        now = time.monotonic()
        if now - self._budget_checked > 10:
            self._budget_checked = now
            spent = spent_since(self.gw.read_conn, period_start(cfg.period))
            self._over_budget = spent >= cfg.usd
        return self._over_budget

    async def after_call(self, prep: Prepared, result: CallResult,
                         semantic: bool = False) -> None:
        cfg = self.config
        if cfg is None or cfg.sample <= 0 or result.completion is None:
            return
        if semantic and not cfg.semantic_hits:
            return
        if not semantic and result.tier not in SAMPLED_TIERS:
            return
        if self.rng.random() >= cfg.sample or self.over_budget():
            return
        req = prep.req
        sample = Sample(result.request_id, "semantic" if semantic else "call",
                        prep.decision.route, prep.ctx.feature, result.tier, result.model,
                        self.redact(req.model_dump_json(exclude_none=True)),
                        self.redact(response_text(result.completion)))
        await self.gw.writer.run(sample_job(sample))
