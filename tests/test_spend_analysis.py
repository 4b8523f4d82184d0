"""Pure figures over ledger rows: provider-cache hit rate, retries, percentiles, and the
live cache-order diagnosis."""

from __future__ import annotations

from typing import Any

import pytest

from devloop.pricing import ModelPrice
from devloop.spend_analysis import (
    diagnose,
    first_difference,
    output_token_percentiles,
    provider_cache_hit_rate,
    retries,
)

SONNET = ModelPrice(3e-6, 15e-6, 3e-7, 3.75e-6, 1024, cache_write_1h=6e-6)
STATIC = "You review code. " * 150  # ~600+ words: well over 1,024 tokens


def count(text: str) -> int:
    return len(text.split())  # a stand-in tokenizer: one token per word


def row(ts: float, prompt: int, read: int = 0, write: int = 0, ttl: str | None = None,
        feature: str = "review", text: str | None = None, prefix: str = "p",
        out: int = 100, status: int = 200) -> dict[str, Any]:
    cost = sum(SONNET.split(prompt, out, read, write, write if ttl == "1h" else 0))
    return {"ts": ts, "feature": feature, "model": "anthropic/claude-sonnet-4-5",
            "prompt_tokens": prompt, "completion_tokens": out, "cached_tokens": read,
            "cache_write_tokens": write, "cache_write_ttl": ttl, "cost_usd": cost,
            "prefix_hash": prefix, "text": text, "status": status}


def test_hit_rate_is_reads_over_all_input_of_calls_with_input() -> None:
    rows = [row(0, 1000, read=800), row(1, 2100, write=2000), row(2, 0)]
    assert provider_cache_hit_rate(rows) == pytest.approx(800 / 3100, abs=1e-4)
    assert provider_cache_hit_rate([row(0, 0)]) is None
    assert provider_cache_hit_rate([{"prompt_tokens": 10, "cache_read_tokens": 5}]) == 0.5


def test_percentiles_nearest_rank_over_answered_calls() -> None:
    rows = [row(i, 10, out=o) for i, o in enumerate([10, 20, 30, 40, 1000])]
    rows.append(row(9, 10, out=99999, status=502))
    assert output_token_percentiles(rows) == {"output_tokens_p50": 30, "output_tokens_p95": 1000}
    assert output_token_percentiles([]) == {"output_tokens_p50": None, "output_tokens_p95": None}


def test_retries_are_identical_requests_soon_after_another() -> None:
    rows = [row(0, 500, status=502), row(5, 500), row(10, 500), row(1000, 500),
            row(1001, 600), row(1002, 500, feature="other")]
    assert retries(rows) == 2  # ts 5 and 10; ts 1000 is outside the window
    assert retries(rows, window_s=2000) == 3


def test_first_difference() -> None:
    assert first_difference("abc", "abd") == 2
    assert first_difference("abc", "abc") is None
    assert first_difference("ab", "abc") == 2


def test_timestamp_first_is_diagnosed_with_position_text_and_cost() -> None:
    rows = []
    for i in range(10):
        text = f"Now: 2026-11-29T10:{i:02d}:00Z\n{STATIC}\nDiff number {i}"
        rows.append(row(i * 10, 1400, write=1390, ttl="5m", text=text, prefix=f"h{i}"))
    found = diagnose(rows, lambda m: SONNET, count)
    assert [d.kind for d in found] == ["prefix_changes"]
    d = found[0]
    assert d.feature == "review" and d.calls == 10 and d.provider_cache_hit_rate == 0.0
    assert d.position == 1 and d.text == "2026-11-29T10:09:00Z"
    assert d.cost_per_1k_calls_usd == pytest.approx(
        1000 * sum(SONNET.split(1400, 100, 0, 1390)), rel=1e-6)
    assert d.fixed_cost_per_1k_calls_usd is not None
    assert d.fixed_cost_per_1k_calls_usd < d.cost_per_1k_calls_usd / 2


def test_short_prompts_are_below_minimum() -> None:
    rows = [row(i, 300, text=f"q {i}", prefix=f"h{i}") for i in range(5)]
    assert [d.kind for d in diagnose(rows, lambda m: SONNET, count)] == ["below_minimum"]


def test_calls_spaced_beyond_the_ttl() -> None:
    rows = [row(i * 900, 3000, write=2900, ttl="5m") for i in range(6)]
    found = diagnose(rows, lambda m: SONNET, count)
    assert [d.kind for d in found] == ["spacing_over_ttl"]
    assert found[0].fixed_cost_per_1k_calls_usd < found[0].cost_per_1k_calls_usd  # type: ignore[operator]


def test_one_hour_ttl_for_calls_within_five_minutes() -> None:
    rows = [row(0, 3000, write=2900, ttl="1h")] + [
        row(i * 60, 3000, read=2900) for i in range(1, 8)]
    found = diagnose(rows, lambda m: SONNET, count)
    assert [d.kind for d in found] == ["ttl_too_long"]
    assert found[0].fixed_cost_per_1k_calls_usd < found[0].cost_per_1k_calls_usd  # type: ignore[operator]


def test_healthy_feature_has_no_diagnosis() -> None:
    rows = [row(0, 3000, write=2900, ttl="5m")] + [
        row(i * 30, 3000, read=2900) for i in range(1, 8)]
    assert diagnose(rows, lambda m: SONNET, count) == []


def test_session_from_headers_and_metadata() -> None:
    from devloop.sessions import session_from

    assert session_from({"x-devloop-session": "s1"}) == "s1"
    assert session_from({"x-claude-code-session-id": "abc-123"}) == "abc-123"
    assert session_from({"session_id": "codex-9"}) == "codex-9"
    uid = "user_1a2b_account__session_0f3e9c1d-1111-2222-3333-444455556666"
    assert session_from({}, {"metadata": {"user_id": uid}}) == \
        "0f3e9c1d-1111-2222-3333-444455556666"
    assert session_from({}, {"metadata": {"user_id": "plain"}}) is None


def test_request_hash_identity_beats_the_prefix() -> None:
    a = {**row(0, 500), "request_hash": "x"}
    b = {**row(5, 500), "request_hash": "y"}  # same prefix and length, different request
    c = {**row(9, 500), "request_hash": "y"}
    assert retries([a, b, c]) == 1
