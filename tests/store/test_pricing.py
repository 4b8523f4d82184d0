"""Prices: litellm's bundled map read as JSON must agree with litellm's own arithmetic."""

from __future__ import annotations

import pytest

from devloop.config import Profile
from devloop.pricing import Pricing, lookup_model

PRODUCTION = "anthropic/claude-sonnet-4-5"


def profile(**extra: object) -> Profile:
    return Profile.model_validate({
        "name": "p", "production_model": PRODUCTION,
        "tiers": {"local": {"backend": "ollama", "model": "qwen2.5-coder:1.5b"},
                  "shared": {"backend": "openai", "base_url": "http://127.0.0.1:9/v1",
                             "model": "team-model"},
                  "frontier": {"backend": "litellm", "model": "openai/gpt-4o"}},
        **extra,
    })


@pytest.mark.slow
@pytest.mark.parametrize("model", [PRODUCTION, "openai/gpt-4o", "gpt-4o-mini",
                                   "gemini/gemini-2.5-pro"])
@pytest.mark.parametrize(("prompt", "completion"), [(1, 0), (1234, 567), (180_000, 4000),
                                                    (250_000, 1000)])
def test_cost_matches_litellm(model: str, prompt: int, completion: int) -> None:
    from devloop.backends.litellm import import_litellm

    litellm = import_litellm()
    theirs = sum(litellm.cost_per_token(model=model, prompt_tokens=prompt,
                                        completion_tokens=completion))
    ours = Pricing(profile()).cost(model, prompt, completion)
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-15)


def test_counterfactual_is_the_production_model_price() -> None:
    p = lookup_model(PRODUCTION)
    assert p is not None and p.input > 0 and p.output > 0
    cf = Pricing(profile()).counterfactual(1000, 100)
    assert cf == pytest.approx(1000 * p.input + 100 * p.output)


def test_unknown_price_is_none_not_zero() -> None:
    pricing = Pricing(profile())
    assert pricing.cost("openai/no-such-model-xyz", 100, 100) is None
    assert pricing.tier_cost("frontier", "openai/no-such-model-xyz", 100, 100) is None
    unknown_prod = Pricing(profile(production_model="acme/secret-model"))
    assert unknown_prod.counterfactual(100, 100) is None


def test_local_tiers_are_free_unless_priced() -> None:
    pricing = Pricing(profile(prices={"team-model": {"input": 0.5, "output": 1.5}}))
    assert pricing.tier_cost("local", "qwen2.5-coder:1.5b", 1000, 1000) == 0.0
    assert pricing.tier_cost("embedded", "smollm2-135m", 1000, 1000) == 0.0
    # the profile prices the team's shared box: USD per million tokens
    assert pricing.tier_cost("shared", "team-model", 2_000_000, 1_000_000) == pytest.approx(2.5)


def test_overrides_beat_the_map_and_price_cache_reads() -> None:
    pricing = Pricing(profile(prices={"openai/gpt-4o": {
        "input": 2.0, "output": 8.0, "cache_read": 0.5, "cache_write": 2.5}}))
    assert pricing.cost("openai/gpt-4o", 1_000_000, 0) == pytest.approx(2.0)
    # 400k of the 1M prompt tokens were read from the provider's cache
    assert pricing.cost("openai/gpt-4o", 1_000_000, 0, cached_tokens=400_000) == pytest.approx(
        0.6 * 2.0 + 0.4 * 0.5)
    assert pricing.cost("openai/gpt-4o", 1_000_000, 0, cache_write_tokens=1_000_000) == \
        pytest.approx(2.5)
    # an override keyed without the provider prefix applies to the prefixed name too
    bare = Pricing(profile(prices={"gpt-4o": {"input": 1.0, "output": 1.0}}))
    assert bare.cost("openai/gpt-4o", 1_000_000, 1_000_000) == pytest.approx(2.0)


def test_map_cache_read_price() -> None:
    p = lookup_model(PRODUCTION)
    assert p is not None and p.cache_read is not None and p.cache_read < p.input
    cost = Pricing(profile()).cost(PRODUCTION, 2000, 0, cached_tokens=1500)
    assert cost == pytest.approx(500 * p.input + 1500 * p.cache_read)
