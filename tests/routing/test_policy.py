"""The routing policy as a decision table: request facts + profile + tier state -> tier, reason."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from devloop.config import Profile
from devloop.routing.policy import (
    InvalidTier,
    ModelNotFound,
    PolicyInput,
    TierState,
    classify_complexity,
    decide,
    fallback_chain,
)

PROFILE = Profile.model_validate({
    "name": "table",
    "production_model": "anthropic/claude-sonnet-4-5",
    "tiers": {
        "local": {"backend": "ollama", "model": "qwen2.5-coder:1.5b", "fallback": "embedded",
                  "models": ["qwen2.5-coder:7b"]},
        "embedded": {"backend": "embedded", "model": "smollm2-135m"},
        "shared": {"backend": "openai", "base_url": "http://127.0.0.1:9/v1",
                   "model": "Qwen/Qwen2.5-Coder-7B-Instruct"},
        "frontier": {"backend": "litellm", "model": "anthropic/claude-sonnet-4-5"},
    },
    "aliases": {"fast": "local", "smart": "frontier", "tiny": "smollm2-135m"},
    "routes": [
        {"match": {"endpoint": "completions"}, "tier": "local", "max_tokens": 256,
         "default_max_tokens": 64},
        {"match": {"endpoint": "embeddings"}, "tier": "embedded"},
        {"match": {"feature": "eval-*"}, "tier": "frontier"},
        {"match": {"feature": "commit-?sg"}, "tier": "embedded"},
        {"match": {"model": "reviewer"}, "tier": "frontier", "max_tokens": 1000},
        {"match": {"min_prompt_tokens": 6000}, "tier": "frontier"},
        {"match": {"max_prompt_tokens": 3}, "tier": "embedded"},
        {"match": {"complexity": "high"}, "tier": "shared"},
        {"tier": "local", "default_max_tokens": 512},
    ],
    "fallbacks": ["local", "embedded", "shared", "frontier"],
})

SHORT = "What does this error mean: KeyError 'x'?"
REFACTOR = "Refactor this module and review it:\n```python\ndef f(x):\n    return x\n```"
MULTI_FILE = "Look at app/main.py, app/db.py and app/api.py and tell me which imports are unused."
DESIGN = "Please design a plan and analyze the trade-offs for the cache layer."


@dataclass
class Case:
    name: str
    inp: PolicyInput
    tier: str
    reason: str  # a fragment the reason must contain
    model: str | None = None
    state: TierState | None = None
    cap: int | None = None
    default: int | None = None

    def __post_init__(self) -> None:
        if "route 9" in self.reason:  # the catch-all route sets a default output limit
            self.default = 512


def chat(model: str = "auto", prompt: str = SHORT, feature: str | None = None,
         forced: str | None = None, tokens: int | None = None,
         complexity: str | None = None) -> PolicyInput:
    return PolicyInput("chat", model, prompt, tokens if tokens is not None else len(prompt) // 4,
                       feature, forced, complexity)


CASES = [
    Case("autocomplete endpoint", PolicyInput("completions", "auto", "def add(a, b):", 4),
         "local", "route 1 (endpoint=completions) -> local", cap=256, default=64),
    Case("autocomplete even with a design verb", PolicyInput("completions", "auto", DESIGN, 20),
         "local", "route 1", cap=256, default=64),
    Case("embeddings endpoint", PolicyInput("embeddings", "auto", "hello", 2), "embedded",
         "route 2 (endpoint=embeddings) -> embedded"),
    Case("feature glob eval-*", chat(feature="eval-commit-message"), "frontier",
         "route 3 (feature=eval-*) -> frontier"),
    Case("feature glob is case sensitive", chat(feature="EVAL-x"), "local", "route 9 (default)"),
    Case("feature glob with ?", chat(feature="commit-msg"), "embedded", "route 4"),
    Case("feature glob with ? needs one char", chat(feature="commit-sg"), "local", "route 9"),
    Case("no feature header skips feature routes", chat(), "local",
         "route 9 (default) -> local"),
    Case("routed model name matched by a route", chat(model="reviewer"), "frontier",
         "model 'reviewer' is routed; route 5 (model=reviewer) -> frontier", cap=1000),
    Case("auto does not match a model route", chat(model="auto"), "local", "route 9"),
    Case("alias to a tier", chat(model="fast"), "local", "alias 'fast' -> 'local'; tier local"),
    Case("alias to frontier", chat(model="smart"), "frontier", "alias 'smart' -> 'frontier'"),
    Case("alias to a concrete model", chat(model="tiny"), "embedded", "tier embedded",
         model="smollm2-135m"),
    Case("tier name", chat(model="shared"), "shared", "model 'shared' names tier shared",
         model="Qwen/Qwen2.5-Coder-7B-Instruct"),
    Case("concrete model of a tier", chat(model="qwen2.5-coder:7b"), "local",
         "model 'qwen2.5-coder:7b' names tier local", model="qwen2.5-coder:7b"),
    Case("forced tier beats everything", chat(feature="eval-x", forced="embedded"), "embedded",
         "forced by X-Devloop-Tier: embedded", model="smollm2-135m"),
    Case("forced tier beats a named model", chat(model="frontier", forced="local"), "local",
         "forced by X-Devloop-Tier: local"),
    Case("huge prompt", chat(tokens=8000), "frontier", "route 6 (min_prompt_tokens=6000)"),
    Case("tiny prompt", chat(prompt="hi", tokens=1), "embedded", "route 7 (max_prompt_tokens=3)"),
    Case("complex: verb on code", chat(prompt=REFACTOR), "shared",
         "route 8 (complexity=high) -> shared [complexity high: task verb"),
    Case("complex: three files", chat(prompt=MULTI_FILE), "shared", "3 files mentioned"),
    Case("complex: two task verbs", chat(prompt=DESIGN), "shared", "task verbs analyze, design"),
    Case("complex: long prompt", chat(prompt="x " * 9000, tokens=2500), "shared",
         "2500 prompt tokens"),
    Case("simple question", chat(prompt="Explain what a Python list is."), "local", "route 9"),
    Case("model verdict complex", chat(complexity="high"), "shared",
         "[complexity high: local model verdict]"),
    Case("model verdict simple beats heuristics", chat(prompt=REFACTOR, complexity="low"),
         "local", "route 9"),
    Case("chosen tier in cooldown is reported", chat(prompt=REFACTOR), "shared",
         "; shared in cooldown (connection refused)",
         state=TierState({"shared": "connection refused"})),
    Case("forced tier in cooldown is still forced", chat(forced="local"), "local",
         "local in cooldown", state=TierState({"local": "down"})),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decision_table(case: Case) -> None:
    d = decide(case.inp, PROFILE, case.state)
    assert d.tier == case.tier, d.reason
    assert case.reason in d.reason
    assert d.model == (case.model or PROFILE.tiers[case.tier].model)
    assert d.max_tokens_cap == case.cap
    assert d.default_max_tokens == case.default


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 20


def test_unknown_model_lists_what_is_available() -> None:
    with pytest.raises(ModelNotFound) as err:
        decide(chat(model="gpt-9"), PROFILE)
    assert "auto" in str(err.value) and "smollm2-135m" in str(err.value)
    assert "reviewer" in str(err.value)


def test_unknown_forced_tier() -> None:
    with pytest.raises(InvalidTier):
        decide(chat(forced="gpu"), PROFILE)


def test_no_route_matches_uses_local() -> None:
    profile = Profile.model_validate({**PROFILE.model_dump(),
                                      "routes": [{"match": {"feature": "x"}, "tier": "shared"}]})
    d = decide(chat(), profile)
    assert (d.tier, d.reason) == ("local", "no route matched; default tier local")


def test_frontier_is_never_a_fallback_unless_allowed() -> None:
    assert fallback_chain("local", PROFILE) == ["embedded", "shared"]
    assert fallback_chain("shared", PROFILE) == ["local", "embedded"]
    allowed = Profile.model_validate({**PROFILE.model_dump(), "allow_frontier_fallback": True})
    assert fallback_chain("local", allowed) == ["embedded", "shared", "frontier"]
    assert decide(chat(), PROFILE).fallback_chain == ["embedded", "shared"]


@pytest.mark.parametrize(("prompt", "tokens", "level"), [
    ("hello", 2, "low"),
    ("Explain what a Python list is.", 8, "low"),
    ("Review this", 3, "low"),  # one verb, no code: not enough
    (REFACTOR, 20, "high"),
    (MULTI_FILE, 20, "high"),
    ("see a.py and b.py", 5, "low"),  # two files are not three
    ("word " * 10, 2001, "high"),
])
def test_complexity_heuristics(prompt: str, tokens: int, level: str) -> None:
    got, why = classify_complexity(prompt, tokens)
    assert got == level, why
    assert why
