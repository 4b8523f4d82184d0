"""Two priority classes on the local and shared tiers.

``interactive`` (the IDE, agents, anything over HTTP unless it says otherwise) never waits
here. ``background`` (Batch API lines, eval drafts, judge replays; ``X-Devloop-Priority:
background`` over HTTP) fills idle capacity and yields: a background call starts only while
no interactive call is in flight on that tier, and at most ``priority.background_concurrency
[tier]`` background calls run on a tier at once, so a batch can never fill a shared GPU that
serves N at a time (the cap is set below N). Calls already running finish; only new
background calls wait. Team mode's per-key fair queue sits in front of this and stays.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from devloop.config import Profile

GATED_TIERS = frozenset({"local", "embedded", "shared"})
DEFAULT_CAPS = {"local": 2, "embedded": 1, "shared": 2}


@dataclass(slots=True)
class _Tier:
    cap: int
    interactive: int = 0
    background: int = 0
    waiting: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class PriorityGate:
    def __init__(self, caps: dict[str, int] | None = None) -> None:
        self.caps = {**DEFAULT_CAPS, **(caps or {})}
        self._tiers: dict[str, _Tier] = {}

    @classmethod
    def from_profile(cls, profile: Profile) -> PriorityGate:
        return cls(dict(profile.priority.background_concurrency))

    def _tier(self, tier: str) -> _Tier:
        state = self._tiers.get(tier)
        if state is None:
            state = self._tiers[tier] = _Tier(max(1, self.caps.get(tier, 1)))
        return state

    def stats(self, tier: str) -> dict[str, int]:
        t = self._tier(tier)
        return {"interactive": t.interactive, "background": t.background,
                "background_waiting": t.waiting, "background_cap": t.cap}

    def _wake(self, t: _Tier) -> None:
        t.changed.set()
        t.changed = asyncio.Event()

    def enter(self, tier: str) -> bool:
        """An interactive stream holds the tier until ``leave`` (its end); False: not gated."""
        if tier not in GATED_TIERS:
            return False
        self._tier(tier).interactive += 1
        return True

    def leave(self, tier: str) -> None:
        t = self._tier(tier)
        t.interactive = max(0, t.interactive - 1)
        self._wake(t)

    @asynccontextmanager
    async def slot(self, tier: str, priority: str) -> AsyncIterator[None]:
        if tier not in GATED_TIERS:
            yield
            return
        t = self._tier(tier)
        if priority != "background":
            t.interactive += 1
            try:
                yield
            finally:
                t.interactive -= 1
                self._wake(t)
            return
        t.waiting += 1
        try:
            while t.interactive > 0 or t.background >= t.cap:
                await t.changed.wait()
        finally:
            t.waiting -= 1
        t.background += 1
        try:
            yield
        finally:
            t.background -= 1
            self._wake(t)
