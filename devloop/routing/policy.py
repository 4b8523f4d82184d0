"""The routing policy, pure: (request facts, profile, tier state) -> RouteDecision.

No I/O here, so every rule is tested with a table of cases.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from devloop.config import Profile, Route
from devloop.prompt_signals import CODE_SIGNALS, FILE_SIGNALS, TASK_VERBS
from devloop.types import ChatRequest, RouteDecision, TextRequest


class ModelNotFound(LookupError):
    def __init__(self, model: str, available: list[str]) -> None:
        super().__init__(f"model {model!r} not found; available: {', '.join(available)}")
        self.model, self.available = model, available


class InvalidTier(ValueError):
    pass


@dataclass(slots=True)
class PolicyInput:
    endpoint: str
    model: str
    prompt: str = ""
    prompt_tokens: int = 0
    feature: str | None = None
    forced_tier: str | None = None
    complexity: str | None = None  # a verdict from the local model, when the profile asks


@dataclass(slots=True)
class TierState:
    """What the router knows of each tier's health right now."""

    down: dict[str, str] = field(default_factory=dict)  # tier -> why it is in cooldown


def classify_complexity(prompt: str, prompt_tokens: int) -> tuple[str, str]:
    """Transparent heuristics -> ("low"|"high", why)."""
    signals = []
    if prompt_tokens > 2000:
        signals.append(f"{prompt_tokens} prompt tokens")
    files = set(FILE_SIGNALS.findall(prompt))
    if len(files) >= 3:
        signals.append(f"{len(files)} files mentioned")
    verbs = {v.lower() for v in TASK_VERBS.findall(prompt)}
    if verbs and (prompt_tokens > 300 or CODE_SIGNALS.search(prompt)):
        signals.append(f"task verb {sorted(verbs)[0]!r} on code")
    elif len(verbs) >= 2:
        signals.append(f"task verbs {', '.join(sorted(verbs))}")
    if signals:
        return "high", "; ".join(signals)
    return "low", "short prompt, no multi-file or design signals"


def route_model_names(profile: Profile) -> list[str]:
    """Names that routes match on (``match.model``): requesting one means "route me"."""
    return [r.match.model for r in profile.routes if r.match.model and r.match.model != "auto"]


def available_models(profile: Profile) -> list[str]:
    names = ["auto", *profile.tiers, *profile.aliases, *route_model_names(profile)]
    for tier in profile.tiers.values():
        names.extend(tier.all_models())
    return list(dict.fromkeys(names))


def bare_model(name: str) -> str:
    """``anthropic/claude-sonnet-4-6`` -> ``claude-sonnet-4-6``: the name agents send."""
    return name.split("/", 1)[1] if "/" in name else name


def alias_target(model: str, profile: Profile) -> tuple[str, str] | None:
    """The alias for ``model``: an exact key first, then glob keys (``claude-*haiku*``) in order."""
    if model in profile.aliases:
        return model, profile.aliases[model]
    for key, target in profile.aliases.items():
        if any(c in key for c in "*?[") and fnmatch.fnmatchcase(model, key):
            return key, target
    return None


def resolve_model(model: str, profile: Profile) -> tuple[str | None, str | None, str]:
    """-> (tier or None for auto, concrete model or None for the tier default, how).

    Order: an exact alias; ``auto``, a tier, a routed name or a tier's model (with or
    without its provider prefix: agents send ``claude-sonnet-4-6`` for
    ``anthropic/claude-sonnet-4-6``); then glob aliases (``claude-*haiku*``).
    """
    seen = set()
    how = ""
    while model not in seen:
        direct = model == "auto" or model in profile.tiers or model in route_model_names(
            profile) or tier_model(model, profile) is not None
        hit = None if direct and model not in profile.aliases else alias_target(model, profile)
        if hit is None:
            break
        seen.add(model)
        key, target = hit
        how = (f"alias {model!r} -> {target!r}; " if key == model else
               f"alias {key!r} ({model!r}) -> {target!r}; ")
        model = target
    if model == "auto":
        return None, None, how
    if model in route_model_names(profile) and model not in profile.tiers:
        return None, None, how or f"model {model!r} is routed; "
    if model in profile.tiers:
        return model, None, how
    if (found := tier_model(model, profile)) is not None:
        return found[0], found[1], how
    raise ModelNotFound(model, available_models(profile))


def tier_model(model: str, profile: Profile) -> tuple[str, str] | None:
    """(tier, model) for a tier's model named exactly, else without its provider prefix."""
    for name, tier in profile.tiers.items():
        if model in tier.all_models():
            return name, model
    if "/" in model:
        return None
    for name, tier in profile.tiers.items():
        for candidate in tier.all_models():
            if bare_model(candidate) == model:
                return name, candidate
    return None


def route_matches(route: Route, inp: PolicyInput, complexity: str) -> bool:
    m = route.match
    if m.endpoint and m.endpoint != inp.endpoint:
        return False
    if m.feature and not (inp.feature and fnmatch.fnmatchcase(inp.feature, m.feature)):
        return False
    if m.model and m.model != inp.model:
        return False
    if m.complexity and m.complexity != complexity:
        return False
    if m.min_prompt_tokens is not None and inp.prompt_tokens < m.min_prompt_tokens:
        return False
    return not (m.max_prompt_tokens is not None and inp.prompt_tokens > m.max_prompt_tokens)


def describe(route: Route, index: int) -> str:
    return f"route {index + 1} ({route.match_text or 'default'})"


def fallback_chain(tier: str, profile: Profile) -> list[str]:
    """The tier's own fallback, then the profile's order; frontier only when allowed."""
    chain: list[str] = []
    own = profile.tiers[tier].fallback
    for name in ([own] if own else []) + profile.fallbacks:
        if name and name != tier and name not in chain:
            if name == "frontier" and not profile.allow_frontier_fallback:
                continue
            chain.append(name)
    return chain


def own_fallback(tier: str, profile: Profile) -> list[str]:
    own = profile.tiers[tier].fallback
    if not own or own == tier or (own == "frontier" and not profile.allow_frontier_fallback):
        return []
    return [own]


def decide(inp: PolicyInput, profile: Profile, state: TierState | None = None) -> RouteDecision:
    state = state or TierState()
    tier, model, how = resolve_model(inp.model, profile)
    resolved = tier
    route: Route | None = None
    index = -1
    if inp.forced_tier:
        if inp.forced_tier not in profile.tiers:
            raise InvalidTier(f"X-Devloop-Tier {inp.forced_tier!r} is not a configured tier "
                              f"(configured: {', '.join(profile.tiers)})")
        tier, model = inp.forced_tier, None
        reason = f"forced by X-Devloop-Tier: {tier}"
    elif tier is not None:
        reason = f"{how}tier {tier}" if how else f"model {inp.model!r} names tier {tier}"
    else:
        # The heuristics scan the whole prompt: only when a route matches on complexity.
        complexity, why = ("high", "local model verdict") if inp.complexity == "high" else (
            ("low", "local model verdict") if inp.complexity == "low" else ("", ""))
        for i, candidate in enumerate(profile.routes):
            if candidate.match.complexity and not complexity:
                complexity, why = classify_complexity(inp.prompt, inp.prompt_tokens)
            if route_matches(candidate, inp, complexity):
                route, tier, index = candidate, candidate.tier, i
                reason = f"{how}{describe(candidate, i)} -> {tier}"
                if candidate.match.complexity:
                    reason += f" [complexity {complexity}: {why}]"
                break
        else:
            tier = "local" if "local" in profile.tiers else next(iter(profile.tiers))
            reason = f"{how}no route matched; default tier {tier}"
    # A tier the client named (model or X-Devloop-Tier) falls back only where that tier's own
    # `fallback:` says; the profile-wide `fallbacks` are for tiers the router chose.
    explicit = bool(inp.forced_tier) or resolved is not None
    chain = own_fallback(tier, profile) if explicit else fallback_chain(tier, profile)
    if tier in state.down:
        reason += f"; {tier} in cooldown ({state.down[tier]})"
    return RouteDecision(
        tier=tier,
        model=model or profile.tiers[tier].model,
        reason=reason,
        fallback_chain=chain,
        max_tokens_cap=route.max_tokens if route else None,
        default_max_tokens=route.default_max_tokens if route else None,
        route=f"routes.{index}" if route else None,
        escalate_to=route.escalate_to if route and not inp.forced_tier else None,
        checks=tuple(route.checks) if route else (),
    )


def apply_token_limits(req: TextRequest, decision: RouteDecision) -> TextRequest:
    """Per-route output limits: a default for requests that set none, and a cap."""
    limit = req.token_limit()
    new = limit if limit is not None else decision.default_max_tokens
    if decision.max_tokens_cap is not None and new is not None:
        new = min(new, decision.max_tokens_cap)
    elif decision.max_tokens_cap is not None:
        new = decision.max_tokens_cap
    if new == limit:
        return req
    update: dict[str, Any] = {"max_tokens": new}
    if isinstance(req, ChatRequest) and req.max_completion_tokens is not None:
        update["max_completion_tokens"] = new
    return req.model_copy(update=update)
