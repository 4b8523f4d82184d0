"""Must-show 1: devloop's cost of a usage equals litellm's own cost_per_token within 0.1%,
for Anthropic, OpenAI and Gemini models, with cache reads, 5-minute and 1-hour cache
writes, reasoning tokens and the long-context tiers."""

from __future__ import annotations

import os

import pytest

from devloop.pricing import lookup_model
from devloop.types import Usage
from devloop.usage import anthropic_usage, usage_from

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# (provider, model, prompt, completion, cache reads, cache writes 5m, cache writes 1h, reasoning)
TABLE = [
    ("anthropic", "claude-sonnet-4-5", 1000, 200, 0, 0, 0, 0),
    ("anthropic", "claude-sonnet-4-5", 2100, 10, 0, 2000, 0, 0),
    ("anthropic", "claude-sonnet-4-5", 2100, 10, 0, 0, 2000, 0),
    ("anthropic", "claude-sonnet-4-5", 5000, 300, 3000, 1000, 500, 0),
    ("anthropic", "claude-sonnet-4-5", 250_000, 900, 200_000, 0, 30_000, 0),   # > 200k tier
    ("anthropic", "claude-sonnet-4-5", 230_000, 400, 0, 220_000, 0, 0),
    ("anthropic", "claude-sonnet-4-6", 12_000, 700, 10_000, 1500, 0, 0),
    ("anthropic", "claude-haiku-4-5", 8000, 50, 4096, 0, 3000, 0),
    ("anthropic", "claude-opus-4-1", 3000, 1000, 1000, 1500, 0, 0),
    ("openai", "gpt-4o", 1000, 100, 800, 0, 0, 0),
    ("openai", "gpt-4.1", 40_000, 2000, 38_912, 0, 0, 0),
    ("openai", "gpt-5", 5000, 1800, 4096, 0, 0, 1200),
    ("openai", "o3-mini", 2000, 3000, 1024, 0, 0, 2500),
    ("gemini", "gemini/gemini-2.5-pro", 10_000, 2000, 6000, 0, 0, 1500),
    ("gemini", "gemini/gemini-2.5-pro", 300_000, 2000, 100_000, 0, 0, 500),   # > 200k tier
    ("gemini", "gemini/gemini-2.5-flash", 9000, 4000, 2000, 0, 0, 3000),
]


def devloop_usage(p: int, c: int, read: int, w5: int, w1: int, think: int) -> Usage:
    return Usage(p, c, read, cache_write_tokens=w5 + w1,
                 cache_write_ttl=("1h" if w1 else "5m") if w5 + w1 else None,
                 cache_write_1h_tokens=w1, reasoning_tokens=think)


def litellm_usage(p: int, c: int, read: int, w5: int, w1: int, think: int):  # noqa: ANN201
    from litellm.types.utils import (
        CacheCreationTokenDetails,
        CompletionTokensDetailsWrapper,
        PromptTokensDetailsWrapper,
    )
    from litellm.types.utils import Usage as LUsage

    details = PromptTokensDetailsWrapper(
        cached_tokens=read, cache_creation_tokens=w5 + w1 or None,
        cache_creation_token_details=(CacheCreationTokenDetails(
            ephemeral_5m_input_tokens=w5, ephemeral_1h_input_tokens=w1) if w5 + w1 else None))
    return LUsage(prompt_tokens=p, completion_tokens=c, total_tokens=p + c,
                  prompt_tokens_details=details,
                  completion_tokens_details=(CompletionTokensDetailsWrapper(
                      reasoning_tokens=think) if think else None))


@pytest.mark.parametrize("row", TABLE, ids=lambda r: f"{r[1]}-{r[2]}-{r[4]}r-{r[5]}w5-{r[6]}w1")
def test_cost_matches_litellm_cost_per_token(row: tuple) -> None:
    import litellm

    provider, model, *tokens = row
    price = lookup_model(model)
    assert price is not None
    inp, out = price.usage_split(devloop_usage(*tokens))
    name = model.split("/", 1)[1] if "/" in model else model
    want_in, want_out = litellm.cost_per_token(
        model=name, custom_llm_provider=provider, usage_object=litellm_usage(*tokens),
        prompt_tokens=tokens[0], completion_tokens=tokens[1])
    assert inp == pytest.approx(want_in, rel=1e-3)
    assert out == pytest.approx(want_out, rel=1e-3)
    assert inp > 0 and out > 0


def test_issue_figures_for_cache_writes_at_both_ttls() -> None:
    """100 fresh + 2,000 written + 10 out on Sonnet: $0.00645 as plain input (the old
    booking), $0.00795 at the 5-minute write rate, $0.01245 at the 1-hour rate."""
    price = lookup_model("anthropic/claude-sonnet-4-5")
    assert price is not None
    assert price.cost(2100, 10) == pytest.approx(0.00645)
    assert sum(price.usage_split(devloop_usage(2100, 10, 0, 2000, 0, 0))) == pytest.approx(0.00795)
    assert sum(price.usage_split(devloop_usage(2100, 10, 0, 0, 2000, 0))) == pytest.approx(0.01245)
    gpt = lookup_model("openai/gpt-4o")
    assert gpt is not None and gpt.cost(1000, 10, 800) == pytest.approx(0.0016)


def test_one_hour_rate_falls_back_to_twice_input_when_map_lacks_it() -> None:
    from devloop.pricing import ModelPrice

    p = ModelPrice(3e-6, 15e-6, 3e-7, 3.75e-6)  # no 1h field, as for older entries
    assert p.split(1000, 0, 0, 1000, 1000) == (pytest.approx(1000 * 6e-6), 0.0)


@pytest.mark.parametrize("row", TABLE[:6], ids=lambda r: f"{r[1]}-{r[2]}")
def test_anthropic_usage_round_trips_through_reader(row: tuple) -> None:
    """Anthropic's wire usage (input_tokens excludes cache tokens) reads back as sent."""
    u = devloop_usage(*row[2:])
    back = usage_from(anthropic_usage(u))
    assert back is not None
    assert (back.prompt_tokens, back.cached_tokens, back.cache_write_tokens,
            back.cache_write_1h_tokens, back.cache_write_ttl) == (
        u.prompt_tokens, u.cached_tokens, u.cache_write_tokens, u.cache_write_1h_tokens,
        u.cache_write_ttl)


def test_openai_usage_reads_cached_and_reasoning_tokens() -> None:
    u = usage_from({"prompt_tokens": 1000, "completion_tokens": 300,
                    "prompt_tokens_details": {"cached_tokens": 800},
                    "completion_tokens_details": {"reasoning_tokens": 250}})
    assert u is not None
    assert (u.cache_read_tokens, u.reasoning_tokens, u.cache_write_tokens) == (800, 250, 0)
    assert u.cache_write_ttl is None


def test_responses_usage_reads_cached_and_reasoning_tokens() -> None:
    """OpenAI Responses' usage: input_tokens already includes the cached tokens."""
    u = usage_from({"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 800},
                    "output_tokens": 300, "output_tokens_details": {"reasoning_tokens": 250},
                    "total_tokens": 1300})
    assert u is not None
    assert (u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens,
            u.cache_write_tokens) == (1000, 300, 800, 250, 0)
    assert u.cache_write_ttl is None
    bare = usage_from({"input_tokens": 12, "output_tokens": 3, "total_tokens": 15})
    assert bare is not None and (bare.prompt_tokens, bare.cached_tokens) == (12, 0)


def test_litellm_usage_object_reads_cache_writes_by_ttl() -> None:
    got = usage_from(litellm_usage(5000, 300, 3000, 1000, 500, 0))
    assert got is not None
    assert (got.prompt_tokens, got.cached_tokens, got.cache_write_tokens,
            got.cache_write_1h_tokens, got.cache_write_ttl) == (5000, 3000, 1500, 500, "1h")
