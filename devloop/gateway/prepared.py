"""What one call carries between the gateway's stages: ``Prepared`` in, ``CallResult`` out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from devloop.types import (
    Completion,
    Embeddings,
    RequestContext,
    RouteDecision,
)

if TYPE_CHECKING:
    from devloop.gateway.admission import Reservation

CacheStatus = Literal["hit", "miss", "bypass", "off"]


@dataclass(slots=True)
class Prepared:
    """A routed request: its decision, cache key and status, and what admission holds."""

    req: Any
    ctx: RequestContext
    decision: RouteDecision
    key: str | None
    cache: CacheStatus
    started: float
    # The (tier, model) ``key`` was computed for: the key the answer is stored under when
    # that tier serves it (a fallback's answer gets its own).
    key_for: tuple[str, str] | None = None
    reservation: Reservation | None = None
    rate_scopes: list[str] = field(default_factory=list)
    # Headers for an OpenAI-compatible upstream (a team devloop books the call under the
    # same request id and feature); None when no tier speaks that protocol.
    forward_headers: dict[str, str] | None = None
    # A cascade's escalation: the request id of the call whose answer failed a check.
    parent_request_id: str | None = None
    # An interactive stream on a local/shared tier, counted by the priority gate until released.
    priority_tier: str | None = None
    # A live stream is open (from admission until its row is committed): the writer
    # commits beside the loop meanwhile.
    streaming: bool = False
    # (the request they were made of, prefix hash, request hash): see metering.request_digests
    digests: tuple[Any, str, str] | None = None


@dataclass(slots=True)
class CallResult:
    request_id: str
    decision: RouteDecision
    tier: str
    backend: str
    model: str
    reason: str
    cache: CacheStatus
    completion: Completion | None = None
    embeddings: Embeddings | None = None
    cost_usd: float | None = 0.0
    counterfactual_usd: float | None = None
    saved_usd: float | None = None
    overhead_ms: float = 0.0
