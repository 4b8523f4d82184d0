"""The spend ledger's row: one CallRecord per call (the reports are in devloop.store.spend)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Literal


@dataclass(slots=True)
class CallRecord:
    request_id: str
    endpoint: str
    tier: str | None
    backend: str | None
    model: str | None
    route_reason: str | None
    cache: Literal["hit", "miss", "bypass", "off"] = "miss"
    feature: str | None = None
    user: str | None = None
    key_id: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    tokens_counted: int = 0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    stream: int = 0
    status: int = 200
    error: str | None = None
    cost_usd: float | None = 0.0
    counterfactual_usd: float | None = None
    saved_usd: float | None = None
    production_model: str | None = None
    prompt_hash: str | None = None
    prefix_hash: str | None = None
    queue_position: int | None = None
    queue_wait_ms: float | None = None
    ts: float = 0.0

    def row(self) -> dict[str, Any]:
        data = asdict(self)
        data["ts"] = self.ts or time.time()
        return data


def saved(cost: float | None, counterfactual: float | None) -> float | None:
    if cost is None or counterfactual is None:
        return None
    return counterfactual - cost
