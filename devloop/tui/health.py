"""Tier health as the TUI shows it: the router's in-memory state (no I/O), plus ledger latency."""

from __future__ import annotations

from typing import Any

from devloop.config import Profile
from devloop.store.reports import TierLatency
from devloop.tui.formatting import millis
from devloop.tui.widgets.stats import TierState


def tier_states(profile: Profile, gateway: Any | None,
                latency: dict[str, TierLatency] | None = None) -> list[TierState]:
    """One line per configured tier. Without a gateway (endpoint not hosted) the state is off."""
    out = []
    for name, cfg in profile.tiers.items():
        lat = (latency or {}).get(name)
        p50 = millis(lat.p50_ms) if lat and lat.p50_ms is not None else ""
        if gateway is None:
            out.append(TierState(name, cfg.backend, "off", p50 or cfg.backend))
            continue
        router = gateway.router
        health = router.health[name]
        if router.is_down(name):
            out.append(TierState(name, cfg.backend, "down", health.reason or "cooldown"))
        elif health.last is not None and not health.last.ok:
            out.append(TierState(name, cfg.backend, "down", health.last.detail))
        elif health.last is not None or (health.attempts and not health.failures):
            out.append(TierState(name, cfg.backend, "ok", p50))
        else:
            out.append(TierState(name, cfg.backend, "idle", p50 or "no calls yet"))
    return out
