"""Grading draft outputs with the eval runner's assertions (devloop.evals.assertions).

Model-graded assertions (llm-rubric, similar) are judged on the local tier as well, so the
draft stage never spends money; its pass rate is informative, not a gate.
"""

from __future__ import annotations

import uuid
from typing import Any

from devloop.backends import BackendError
from devloop.evals.evalset import Case
from devloop.pipeline.draft import DRAFT_TIER, Grader, Verdict, draft_tier
from devloop.types import ChatRequest, EmbeddingRequest, RequestContext


class LocalGrader:
    """devloop.evals.assertions.Grader backed by the Gateway's local tier (free)."""

    def __init__(self, gateway: Any, feature: str = "check:grader",
                 tier: str | None = None) -> None:
        self.gateway = gateway
        self.feature = feature
        profile = getattr(getattr(gateway, "pricing", None), "profile", None)
        self.tier = tier or (draft_tier(profile, gateway.pricing) if profile is not None
                             else DRAFT_TIER)

    def _ctx(self, endpoint: str) -> RequestContext:
        return RequestContext(request_id=f"check-grade-{uuid.uuid4().hex[:12]}",
                              endpoint=endpoint,  # type: ignore[arg-type]
                              protocol="openai", feature=self.feature, forced_tier=self.tier,
                              origin="check")

    async def judge(self, messages: list[dict[str, str]], model: str | None
                    ) -> tuple[str, float]:
        req = ChatRequest.model_validate({"model": self.tier, "messages": messages,
                                          "temperature": 0, "max_tokens": 200})
        result = await self.gateway.call(req, self._ctx("chat"))
        return (result.completion.text if result.completion else ""), 0.0

    async def embed(self, texts: list[str], model: str | None
                    ) -> tuple[list[list[float]], float]:
        req = EmbeddingRequest(model=self.tier, input=texts)
        result = await self.gateway.embed(req, self._ctx("embeddings"))
        return (result.embeddings.vectors if result.embeddings else []), 0.0


def default_grader(gateway: Any) -> Grader:
    """Grade a draft output against its case's assertions."""
    judge = LocalGrader(gateway)

    async def grade(case: Case, output: str, facts: dict[str, Any]) -> Verdict:
        from devloop.evals.assertions import Output, evaluate

        out = Output(text=output, cost_usd=facts.get("cost_usd"),
                     latency_ms=facts.get("latency_ms"), vars=case.vars,
                     syntax=facts.get("syntax", "devloop"),
                     finish_reason=facts.get("finish_reason"))
        try:
            verdict = await evaluate(case.assertions, out, case.threshold, judge)
        except (BackendError, RuntimeError, ValueError) as exc:
            return Verdict(passed=False, score=0.0, reason=f"grading failed: {exc}"[:300])
        return Verdict(passed=verdict.passed, score=verdict.score, reason=verdict.reason)

    return grade
