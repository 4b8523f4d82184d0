"""Runs the policy against live tier health: cooldowns, fallbacks, periodic probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from devloop.backends import (
    Backend,
    BackendError,
    UpstreamTimeout,
    UpstreamUnavailable,
    make_backend,
)
from devloop.config import Profile, Settings
from devloop.routing.capabilities import needs, route_capable
from devloop.routing.policy import TierState
from devloop.types import Capabilities, Health, RouteDecision

log = logging.getLogger("devloop.router")
T = TypeVar("T")


@dataclass(slots=True)
class TierHealth:
    failures: int = 0
    down_until: float = 0.0
    reason: str = ""
    attempts: int = 0
    last: Health | None = None


class Router:
    def __init__(self, profile: Profile, ollama_probe_timeout: float = 2.0,
                 settings: Settings | None = None) -> None:
        self.profile = profile
        self.backends: dict[str, Backend] = {
            name: make_backend(name, cfg, ollama_probe_timeout, settings)
            for name, cfg in profile.tiers.items()
        }
        self.health = {name: TierHealth() for name in profile.tiers}
        self._probe_task: asyncio.Task[None] | None = None
        self._discovery: asyncio.Task[Any] | None = None

    async def start(self, probe: bool = True) -> None:
        for backend in self.backends.values():
            await backend.start()
        # What each upstream can do (context length, vision) is read in the background.
        self._discovery = asyncio.create_task(self._discover())
        if probe and self.profile.health_interval > 0:
            self._probe_task = asyncio.create_task(self._probe_loop())

    async def _discover(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(
                *(b.discover() for b in self.backends.values()), return_exceptions=True), 5)

    async def discovered(self) -> None:
        """Wait (once, briefly) for capability discovery before the first routing decision."""
        task = self._discovery
        if task is not None and not task.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), 5)

    def caps(self, tier: str) -> Capabilities:
        return self.backends[tier].capabilities()

    def capable(self, decision: RouteDecision, req: Any, prompt_tokens: int = 0
                ) -> RouteDecision:
        """Move the decision to a tier that honours every field the request sends (or raise
        CapabilityError naming the field and the tier)."""
        return route_capable(decision, needs(req, prompt_tokens), self.caps,
                             lambda t: self.profile.tiers[t].model)

    async def close(self) -> None:
        if self._discovery is not None and not self._discovery.done():
            self._discovery.cancel()
        if self._probe_task:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
        for backend in self.backends.values():
            await backend.close()

    def state(self) -> TierState:
        now = time.monotonic()
        return TierState({n: h.reason for n, h in self.health.items() if h.down_until > now})

    def is_down(self, tier: str) -> bool:
        return self.health[tier].down_until > time.monotonic()

    def mark_failure(self, tier: str, exc: BackendError) -> None:
        h = self.health[tier]
        h.failures += 1
        h.reason = str(exc).split(": ", 1)[-1][:200]
        # Not reachable at all: stop at once. Other failures: after the threshold.
        if isinstance(exc, UpstreamUnavailable) or h.failures >= self.profile.failure_threshold:
            h.down_until = time.monotonic() + self.profile.cooldown
            log.warning("tier %s in cooldown for %ss: %s", tier, self.profile.cooldown, h.reason)

    def mark_success(self, tier: str) -> None:
        h = self.health[tier]
        h.failures, h.down_until, h.reason = 0, 0.0, ""

    def candidates(self, decision: RouteDecision) -> list[str]:
        """The chosen tier then its fallbacks, skipping tiers in cooldown (but never all)."""
        order = [decision.tier, *decision.fallback_chain]
        live = [t for t in order if not self.is_down(t)]
        return live or order[:1]

    def model_for(self, tier: str, decision: RouteDecision) -> str:
        return decision.model if tier == decision.tier else self.profile.tiers[tier].model

    async def run(
        self, decision: RouteDecision, call: Callable[[Backend, str], Awaitable[T]]
    ) -> tuple[T, str, str]:
        """Call the first tier that answers -> (result, tier served, reason suffix)."""
        notes: list[str] = []
        last: BackendError | None = None
        for tier in self.candidates(decision):
            backend = self.backends[tier]
            self.health[tier].attempts += 1
            try:
                result = await call(backend, self.model_for(tier, decision))
            except BackendError as exc:
                last = exc
                exc.tier = exc.tier or tier
                if not exc.retryable:
                    raise
                self.mark_failure(tier, exc)
                notes.append(f"{tier} failed ({_short(exc)})")
                continue
            self.mark_success(tier)
            served = [*notes, f"served by {tier}"] if tier != decision.tier else notes
            suffix = f"; {'; '.join(served)}" if served else ""
            return result, tier, suffix
        assert last is not None
        if decision.skipped:  # say why no fallback was tried
            last.args = (f"{last}; {decision.skipped}",)
        raise last

    async def check(self, tier: str) -> Health:
        backend = self.backends[tier]
        try:
            health = await asyncio.wait_for(backend.health(), 5)
        except (TimeoutError, BackendError) as exc:
            health = Health(False, f"health check failed: {type(exc).__name__}")
        self.health[tier].last = health
        # Back: use it again before the cooldown ends. Only a probe that reached the upstream
        # (it measured a latency) counts: litellm's "a key is configured" proves nothing.
        if health.ok and health.latency_ms is not None and self.is_down(tier):
            self.mark_success(tier)
        return health

    async def check_all(self) -> dict[str, Health]:
        names = list(self.backends)
        results = await asyncio.gather(*(self.check(n) for n in names))
        return dict(zip(names, results, strict=True))

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.profile.health_interval)
            for tier, h in self.health.items():
                if h.down_until > time.monotonic():
                    await self.check(tier)


def _short(exc: BackendError) -> str:
    if isinstance(exc, UpstreamUnavailable):
        return "unreachable"
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    return str(exc).split(": ", 1)[-1][:120]
