"""What an eval run will do: its options, and the plan of cases (shared by the runner and the
Batch API client, so neither imports the other)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devloop.config import Profile
from devloop.evals.evalset import Case, EvalSet


@dataclass(slots=True)
class RunOptions:
    model: str | None = None
    api_base: str | None = None
    threshold: float | None = None
    max_cost: float | None = None
    concurrency: int = 4
    batch: bool = False
    judge_model: str | None = None
    embedding_model: str | None = None
    max_retries: int = 4
    backoff_s: float = 0.5
    timeout_s: float = 120.0
    use_cache: bool = True
    poll_interval_s: float = 1.0
    batch_timeout_s: float = 24 * 3600.0
    progress: bool = True
    db_path: Path | None = None  # --batch: provider batch ids and ledger rows go here


@dataclass(slots=True)
class PlannedCase:
    case: Case
    case_hash: str
    key: str
    messages: list[dict[str, str]]
    cached: dict[str, Any] | None = None
    problem: str | None = None  # a case that cannot run (no effective assertion): an error


@dataclass(slots=True)
class Plan:
    evalset: EvalSet
    model: str
    threshold: float
    max_tokens: int
    params: dict[str, Any]
    judge_model: str
    embedding_model: str
    items: list[PlannedCase] = field(default_factory=list)
    estimate_usd: float | None = 0.0
    api_base: str | None = None
    unpriced: set[str] = field(default_factory=set)  # models with no known price
    batch_id: str | None = None  # set by the Batch API client once submitted

    @property
    def to_run(self) -> list[PlannedCase]:
        return [i for i in self.items if i.cached is None and i.problem is None]


def model_for(evalset: EvalSet, opts: RunOptions, profile: Profile) -> str:
    """The model a run (or the gate) is for: --model, else the eval set's, else the
    profile's production model."""
    return opts.model or evalset.model_for(profile.production_model)
