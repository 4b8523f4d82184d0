"""The ladder on eight realistic eval sets (agent, RAG, coding assistant, support, report,
retriever, sales, triage): its findings match what tests/pipeline/data/realistic/
expectations.yaml wrote down before the ladder ran on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from devloop.config import Profile, load_profile
from devloop.evals.evalset import PLACEHOLDER, EvalSet, load_evalset
from devloop.pipeline.cache_order import CacheOrderResult, analyse_cache_order, cache_pricing

DATA = Path(__file__).parent / "data" / "realistic"
EXPECTED: dict[str, dict[str, Any]] = yaml.safe_load((DATA / "expectations.yaml").read_text())


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profile("default")


def run(name: str, profile: Profile) -> tuple[EvalSet, CacheOrderResult]:
    es = load_evalset(DATA / f"{name}.yaml")
    model = es.model_for(profile.production_model)
    return es, analyse_cache_order(es, cache_pricing(profile, model), production_model=model)


def test_the_set_is_big_and_varied() -> None:
    files = sorted(p.stem for p in DATA.glob("*.yaml") if p.stem != "expectations")
    assert len(files) >= 8 and set(files) == set(EXPECTED)
    for name in files:
        es = load_evalset(DATA / f"{name}.yaml")
        assert len(es.prompt.variables()) >= 2, name
        assert len(es.render(es.cases[0].vars)[0]["content"]) > 4000, name  # long prompts
    providers = {EXPECTED[n]["model"].split("/")[0] for n in files}
    assert providers == {"anthropic", "openai"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_findings_match_expectations(name: str, profile: Profile) -> None:
    exp = EXPECTED[name]
    es, r = run(name, profile)
    assert r.production_model == exp["model"]
    if "status" in exp:
        assert r.status == exp["status"], r.notes
    if "min_cacheable" in exp:
        assert r.min_cacheable_tokens == exp["min_cacheable"]
    if "tokenizer" in exp:
        assert exp["tokenizer"] in r.tokenizer
    rates = {v.var: v for v in r.variables}
    for var, rate in exp.get("rates", {}).items():
        assert rates[var].rate == rate, (var, rates[var])
    for var in exp.get("inferred", []):
        assert rates[var].source == "inferred"
        assert any(n.startswith(f"{{{{{var}}}}} inferred {rates[var].rate}") for n in r.notes)
    if "moved" in exp:
        moved = _moved_vars(es, r)
        assert moved == set(exp["moved"]), r.reordered_diff
    for var, why in exp.get("stuck", {}).items():
        stuck = [e for e in r.dynamic_elements if e.var == var and e.why]
        assert stuck and why in (stuck[0].why or ""), r.dynamic_elements
    if "system_starts" in exp:
        prompt = r.reordered_prompt or {"system": es.prompt.system}
        assert prompt["system"].startswith(exp["system_starts"])
    for text in exp.get("kept_blocks", []):
        prompt = r.reordered_prompt or {"system": es.prompt.system, "messages": []}
        assert text in prompt["system"], text
    if "block_split" in exp:
        assert bool(r.block_split) == exp["block_split"]
        if exp["block_split"]:
            assert any("Split it" in n and "cache_control" in n for n in r.notes)
    if "cached_now_zero" in exp:
        assert (r.cacheable_prefix_tokens == 0) == exp["cached_now_zero"]
    if exp.get("reordered_better"):
        assert r.reordered_cost_per_1k_calls_usd < r.cost_per_1k_calls_usd
        assert r.reordered_prefix_tokens >= r.cacheable_prefix_tokens
    if exp.get("below_minimum"):
        assert any("below the provider minimum" in n for n in r.notes)
    for var in exp.get("repeated", []):
        assert var in r.repeated_values
    if exp.get("prefix_step"):
        for n in (r.cacheable_prefix_tokens, r.reordered_prefix_tokens):
            assert n == 0 or (n >= 1024 and (n - 1024) % 128 == 0), n


def _moved_vars(es: EvalSet, r: CacheOrderResult) -> set[str]:
    return {PLACEHOLDER.fullmatch(t).group(1) for t in r.moved_values  # type: ignore[union-attr]
            if PLACEHOLDER.fullmatch(t)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_suggestion_renders_the_same_variables(name: str, profile: Profile) -> None:
    es, r = run(name, profile)
    if r.reordered_prompt is None:
        assert r.reordered_diff is None
        return
    suggested = EvalSet.model_validate({**es.model_dump(mode="json", by_alias=True,
                                                        exclude_none=True),
                                        "prompt": r.reordered_prompt})
    assert set(suggested.prompt.variables()) == set(es.prompt.variables())
    for case in es.cases:
        now = "\n".join(m["content"] for m in es.render(case.vars))
        then = "\n".join(m["content"] for m in suggested.render(case.vars))
        for value in case.vars.values():
            assert str(value) in then
        # Nothing but the moved units changed: the same words, give or take a clause's
        # conjunction and capital and a reference to a value stated once.
        lost = set(now.split()) - set(then.split())
        assert len(lost) <= 6, lost
    assert r.reordered_diff and r.reordered_diff.startswith(f"--- {es.name} (now)")
