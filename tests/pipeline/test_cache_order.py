"""Stage 3, cache order: the cacheable prefix, dynamic content before static content, the
provider minimum and the cost of 1,000 calls now and reordered."""

from __future__ import annotations

from pathlib import Path

import pytest

from devloop.config import Profile, load_profile
from devloop.evals.evalset import load_evalset
from devloop.pipeline.cache_order import analyse_cache_order, cache_pricing
from devloop.pipeline.cache_prices import CachePricing, Level, best_cost
from devloop.pipeline.dynamics import literal_dynamics, placeholder_kind
from devloop.pipeline.providers import cache_model
from devloop.pipeline.rates import hit_probability
from devloop.pipeline.reorder import Dyn, plan_reorder
from devloop.pricing import ModelPrice
from tests.pipeline.conftest import block, style_guide, write

SONNET = "anthropic/claude-sonnet-4-5"


def evalset_file(tmp_path: Path, system: str, user: str = "Diff:\n{{diff}}",
                 cases: str | None = None) -> Path:
    cases = cases or """
  - id: a
    vars: {now: "2025-03-04T09:15:02Z", user_name: Priya Raman, diff: "+ fix the bug"}
  - id: b
    vars: {now: "2025-03-04T11:40:57Z", user_name: Tomas Ortega, diff: "- remove dead code"}
"""
    text = (f"name: review\nproduction_model: {SONNET}\nprompt:\n  system: |\n"
            f"{block(system, 4)}\n  messages:\n    - role: user\n      content: |\n"
            f"{block(user, 8)}\ncases:{cases}")
    return write(tmp_path / "review.yaml", text)


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profile("default")


def analyse(path: Path, profile: Profile, tokenizer, output_tokens: float = 150.0):
    es = load_evalset(path)
    model = es.model_for(profile.production_model)
    return analyse_cache_order(es, cache_pricing(profile, model), production_model=model,
                               output_tokens=output_tokens)


CLAUDE = 1.10  # Claude counts are cl100k x 1.10


def test_dynamic_header_before_a_2000_token_style_guide(tmp_path: Path, profile: Profile,
                                                        tokenizer) -> None:
    guide = style_guide()
    guide_tokens = len(tokenizer.encode(guide))
    assert guide_tokens > 1700
    system = f"Current time: {{{{now}}}}\nYou are helping {{{{user_name}}}}.\n\n{guide}"
    r = analyse(evalset_file(tmp_path, system), profile, tokenizer)

    assert r.status == "warn"
    kinds = [(e.kind, e.text) for e in r.dynamic_before_static]
    assert kinds == [("timestamp", "{{now}}"), ("user", "{{user_name}}")]
    now, user = r.dynamic_before_static
    assert 0 < now.position < user.position < 40  # token offsets at the very top
    assert now.static_after_tokens >= 0.95 * guide_tokens * CLAUDE
    assert (now.rate, user.rate) == ("per_call", "per_call")

    # Two calls share only "<|system|>\nCurrent time: 2025-03-04T": nothing is cached.
    assert r.cacheable_prefix_tokens == 0 and r.levels[0].tokens <= 20
    assert r.min_cacheable_tokens == 1024  # litellm's cost map for claude-sonnet-4-5
    assert guide_tokens * CLAUDE <= r.reordered_prefix_tokens <= (guide_tokens + 30) * CLAUDE
    assert r.cost_per_1k_calls_usd is not None and r.reordered_cost_per_1k_calls_usd is not None
    assert r.reordered_cost_per_1k_calls_usd < 0.5 * r.cost_per_1k_calls_usd

    # The suggestion keeps every line, static first and the per-call lines last.
    system_after = r.reordered_prompt["system"]
    assert system_after.startswith(guide.splitlines()[0])
    assert system_after.rstrip().endswith("You are helping {{user_name}}.")
    assert sorted(system_after.split()) == sorted(system.split())
    assert "-    Current time: {{now}}\n" in r.reordered_diff
    assert "+    Current time: {{now}}\n" in r.reordered_diff


def test_costs_are_priced_with_the_hit_model(tmp_path: Path, profile: Profile,
                                             tokenizer) -> None:
    system = f"Current time: {{{{now}}}}\n\n{style_guide()}"
    r = analyse(evalset_file(tmp_path, system), profile, tokenizer, output_tokens=100)
    p = cache_pricing(profile, SONNET).price
    assert p is not None and p.cache_read and p.cache_write
    now = 1000 * (r.prompt_tokens * p.input + 100 * p.output)
    assert r.cost_per_1k_calls_usd == pytest.approx(now, rel=1e-6)
    # After the move the guide is a per-deployment prefix: read with the chance that the
    # previous call came within the lifetime, written otherwise.
    c = r.reordered_prefix_tokens
    assert r.reordered_ttl in ("5m", "1h")
    hit = hit_probability("per_deployment", 300 if r.reordered_ttl == "5m" else 3600, 60)
    write = p.cache_write if r.reordered_ttl == "5m" else p.input * 2
    later = 1000 * ((r.prompt_tokens - c) * p.input + c * (hit * p.cache_read + (1 - hit) * write)
                    + 100 * p.output)
    assert r.reordered_cost_per_1k_calls_usd == pytest.approx(later, rel=1e-3)


def test_well_ordered_prompt_gets_no_warning(tmp_path: Path, profile: Profile,
                                             tokenizer) -> None:
    guide = style_guide()
    user = "Time: {{now}}\nReviewer: {{user_name}}\n\nDiff:\n{{diff}}"
    r = analyse(evalset_file(tmp_path, guide, user), profile, tokenizer)
    assert r.status == "pass"
    assert r.dynamic_before_static == []
    assert r.reordered_prompt is None
    assert r.cacheable_prefix_tokens >= len(tokenizer.encode(guide)) * CLAUDE
    assert r.reordered_prefix_tokens == r.cacheable_prefix_tokens
    assert r.cost_per_1k_calls_usd == r.reordered_cost_per_1k_calls_usd
    assert r.block_split == []  # the system block ends where the per-call text starts
    assert {e.kind for e in r.dynamic_elements} == {"timestamp", "user", "placeholder"}


def test_literal_timestamp_and_request_id_count_as_dynamic(tmp_path: Path, profile: Profile,
                                                          tokenizer) -> None:
    # Pinned in the eval set, but an application fills these in per call.
    system = ("Generated at 2025-03-04 09:15:02 for request "
              "req_8f3a9c2e71d04b5a.\n\n" + style_guide())
    r = analyse(evalset_file(tmp_path, system), profile, tokenizer)
    assert [e.kind for e in r.dynamic_before_static] == ["timestamp", "id"]
    assert r.dynamic_before_static[0].text == "2025-03-04 09:15:02"
    assert r.cacheable_prefix_tokens == 0
    assert r.reordered_prefix_tokens > 1700 * CLAUDE


def test_small_dynamic_tail_is_not_flagged(tmp_path: Path, profile: Profile,
                                           tokenizer) -> None:
    # A placeholder followed by one short static sentence gains nothing from reordering.
    r = analyse(evalset_file(tmp_path, "You write commit messages.",
                             "Diff:\n{{diff}}\n\nReply with the message only."),
                profile, tokenizer)
    assert r.status == "pass" and r.dynamic_before_static == []
    assert any("below the provider minimum" in n for n in r.notes)


def test_minimum_cacheable_length_sources(profile: Profile) -> None:
    assert cache_pricing(profile, SONNET).min_cacheable_tokens == 1024
    assert "cost map" in cache_model(SONNET).min_source
    # The cost map says 4096 for Haiku 4.5.
    assert cache_pricing(profile, "anthropic/claude-haiku-4-5").min_cacheable_tokens == 4096
    # OpenAI models have no entry in the map: devloop's table.
    assert cache_pricing(profile, "openai/gpt-4.1").min_cacheable_tokens == 1024
    assert "table" in cache_model("openai/gpt-4.1").min_source
    # A profile setting wins over the map.
    custom = profile.model_copy(update={"prompt_cache_min_tokens": 2048})
    assert cache_pricing(custom, SONNET).min_cacheable_tokens == 2048
    # A model with no price and no known provider: no caching, prices unknown.
    unknown = cache_pricing(profile, "mystery-model")
    assert unknown.min_cacheable_tokens is None and unknown.price is None


def test_unknown_price_gives_null_costs(tmp_path: Path, profile: Profile, tokenizer) -> None:
    path = evalset_file(tmp_path, "Be brief.")
    path.write_text(path.read_text().replace(SONNET, "mystery-model"))
    r = analyse(path, profile, tokenizer)
    assert r.cost_per_1k_calls_usd is None and r.reordered_cost_per_1k_calls_usd is None
    assert any("price unknown" in n for n in r.notes)


@pytest.mark.parametrize(("levels", "expected"), [
    ([], 1000 * 2000 * 3e-6),                                  # nothing cached
    # A breakpoint on per-call text is never read and pays the write premium every call.
    ([Level("per_call", 1500)], 1000 * (500 * 3e-6 + 1500 * 3.75e-6)),
    ([Level("per_deployment", 1500)], None),                  # computed below
])
def test_best_cost(levels: list[Level], expected: float | None) -> None:
    pricing = CachePricing(ModelPrice(3e-6, 15e-6, 3e-7, 3.75e-6), 1024, cache_model(SONNET),
                           6e-6)
    usd, ttl, share = best_cost(pricing, levels, 2000, 0, 60)
    if expected is None:
        hit5, hit1 = hit_probability("per_deployment", 300, 60), hit_probability(
            "per_deployment", 3600, 60)
        five = 500 * 3e-6 + 1500 * (hit5 * 3e-7 + (1 - hit5) * 3.75e-6)
        hour = 500 * 3e-6 + 1500 * (hit1 * 3e-7 + (1 - hit1) * 6e-6)
        expected = 1000 * min(five, hour)
        assert ttl == ("5m" if five <= hour else "1h") and share > 0.7
    assert usd == pytest.approx(expected)
    assert best_cost(CachePricing(None, 1024), levels, 2000, 0, 60)[0] is None


@pytest.mark.parametrize(("name", "values", "kind"), [
    ("now", ["x"], "timestamp"),
    ("when", ["2025-01-02T03:04:05Z", "2024-12-31 23:59:59"], "timestamp"),
    ("today", ["Monday"], "date"),
    ("x", ["2025-01-02", "3 March 2025"], "date"),
    ("request_id", ["abc"], "id"),
    ("x", ["0b6f3c1e-9a4d-4c55-8f0e-2f7d1b9a6c3e"], "id"),
    ("user_name", ["Ada"], "user"),
    ("customer_email", ["a@b.c"], "user"),
    ("email", ["Dear team, " * 100], "document"),
    ("diff", ["+ x"], "placeholder"),
])
def test_placeholder_kinds(name: str, values: list[str], kind: str) -> None:
    assert placeholder_kind(name, values) == kind


def test_literal_dynamics_skip_placeholders() -> None:
    text = "At {{now}} on 2025-03-04 for 0b6f3c1e-9a4d-4c55-8f0e-2f7d1b9a6c3e at 10:31:07"
    found = [(kind, text[s:e]) for kind, s, e in literal_dynamics(text)]
    assert found == [("date", "2025-03-04"), ("id", "0b6f3c1e-9a4d-4c55-8f0e-2f7d1b9a6c3e"),
                     ("timestamp", "10:31:07")]


def test_reorder_moves_the_sentence_inside_its_message_only() -> None:
    static = "Static rule. " * 40
    templates = [
        {"role": "system", "content": f"Hello {{{{user}}}}.\n\n{static}\n\nBye.\n"},
        {"role": "user", "content": "{{question}}\n\nThanks."},
    ]
    dyns = [Dyn(0, 6, 14, "per_call", "{{user}}", "user"),
            Dyn(1, 0, 12, "per_call", "{{question}}", "question")]
    plan = plan_reorder(templates, dyns)
    assert plan.templates[0]["content"] == f"{static.rstrip()}\n\nBye.\n\nHello {{{{user}}}}.\n"
    assert plan.templates[1] == templates[1]  # too little static text after it to matter
