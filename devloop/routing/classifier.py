"""`classifier: model`: the local model's one-word verdict on a prompt, simple or complex.

Used only when a request is routed by the policy (``model: auto``) and some route matches on
complexity. The verdict comes from the cheapest live tier (local, else embedded); when none
answers, or the answer is neither word, the policy's transparent heuristics decide.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict

from devloop.backends import BackendError
from devloop.config import Profile
from devloop.routing.policy import resolve_model
from devloop.routing.router import Router
from devloop.types import ChatRequest, Message

log = logging.getLogger("devloop.classifier")
VERDICT_TIERS = ("local", "embedded")
MAX_PROMPT_CHARS = 4000  # the head of a long prompt is enough to judge it
INSTRUCTION = (
    "You sort developer requests. Reply with exactly one word: 'simple' for a quick question, "
    "a small edit or autocomplete; 'complex' for multi-file changes, design, debugging or "
    "long reasoning."
)
WORD = re.compile(r"\b(simple|easy|trivial|complex|hard|difficult)\b", re.IGNORECASE)
LEVELS = {"simple": "low", "easy": "low", "trivial": "low",
          "complex": "high", "hard": "high", "difficult": "high"}


def parse_verdict(text: str) -> str | None:
    """'Complex.' -> 'high'; 'simple' -> 'low'; anything else -> None (use the heuristics)."""
    m = WORD.search(text or "")
    return LEVELS[m.group(1).lower()] if m else None


def needs_model_verdict(profile: Profile, model: str, forced_tier: str | None) -> bool:
    if profile.classifier != "model" or forced_tier:
        return False
    if not any(r.match.complexity for r in profile.routes):
        return False
    try:
        tier, _, _ = resolve_model(model, profile)
    except LookupError:
        return False
    return tier is None


class ModelClassifier:
    def __init__(self, profile: Profile, router: Router, memory: int = 1024) -> None:
        self.profile = profile
        self.router = router
        self._seen: OrderedDict[str, str | None] = OrderedDict()
        self._memory = memory
        self.calls = 0

    async def complexity(self, prompt: str) -> str | None:
        """"low" | "high" from the local model (remembered per prompt head), else None."""
        head = prompt[:MAX_PROMPT_CHARS]
        if head in self._seen:
            self._seen.move_to_end(head)
            return self._seen[head]
        level = await self._ask_model(head)
        self._seen[head] = level
        while len(self._seen) > self._memory:
            self._seen.popitem(last=False)
        return level

    async def _ask_model(self, prompt: str) -> str | None:
        for tier in VERDICT_TIERS:
            if tier not in self.router.backends or self.router.is_down(tier):
                continue
            backend = self.router.backends[tier]
            req = ChatRequest(
                model=backend.default_model, max_tokens=3, temperature=0.0,
                messages=[Message(role="system", content=INSTRUCTION),
                          Message(role="user", content=f"Request:\n{prompt}\n\nOne word:")])
            self.calls += 1
            try:
                answer = await backend.chat(req, backend.default_model)
            except BackendError as exc:
                log.info("classifier: %s failed (%s); trying the next tier", tier, exc)
                if exc.retryable:
                    self.router.mark_failure(tier, exc)
                continue
            return parse_verdict(answer.text)
        return None
