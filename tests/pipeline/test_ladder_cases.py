"""Each case of the ladder issue as its own test: the role statement stays first, list items
stay in their list, a per-deployment variable keeps the prefix, Haiku 3's minimum is 2,048,
a single Anthropic block with a per-call tail is flagged with the split suggested; plus the
provider data (OpenAI's 128-token steps, tokenizers, output cost stated)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devloop.config import ConfigError, Profile, load_profile
from devloop.evals.evalset import load_evalset
from devloop.pipeline.cache_order import analyse_cache_order, cache_pricing
from devloop.pipeline.providers import ModelTokenizer, cache_model
from devloop.pipeline.rates import hit_probability, infer_rate
from tests.pipeline.conftest import block, style_guide, write

SONNET = "anthropic/claude-sonnet-4-5"


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profile("default")


def evalset(tmp_path: Path, system: str, cases: str, model: str = SONNET,
            user: str = "{{question}}", extra: str = "") -> Path:
    text = (f"name: case\nproduction_model: {model}\n{extra}prompt:\n  system: |\n"
            f"{block(system, 4)}\n  messages:\n    - role: user\n      content: |\n"
            f"{block(user, 8)}\ncases:{cases}")
    return write(tmp_path / "case.yaml", text)


def analyse(path: Path, profile: Profile, **kw: object):
    es = load_evalset(path)
    model = es.model_for(profile.production_model)
    return es, analyse_cache_order(es, cache_pricing(profile, model), production_model=model,
                                   **kw)  # type: ignore[arg-type]


TWO_CASES = """
  - {id: a, vars: {now: "09:15", user_name: Priya, company: Acme, question: "Why?"}}
  - {id: b, vars: {now: "11:40", user_name: Tomas, company: Acme, question: "How?"}}
"""


def test_role_statement_stays_first(tmp_path: Path, profile: Profile) -> None:
    system = ("You are Ava, the support assistant of {{company}}. The time is {{now}}. "
              "Follow the rules below exactly.\n\n" + style_guide())
    es, r = analyse(evalset(tmp_path, system, TWO_CASES), profile)
    assert r.status == "warn" and r.moved_values == ["{{now}}"]
    after = r.reordered_prompt["system"]
    assert after.startswith("You are Ava, the support assistant of {{company}}. Follow the rules "
                            "below exactly.\n\n" + style_guide()[:200])
    assert after.rstrip().endswith("The time is {{now}}.")
    assert r.reordered_prefix_tokens > 1700 > r.cacheable_prefix_tokens


def test_value_inside_the_role_sentence_moves_as_a_clause(tmp_path: Path,
                                                         profile: Profile) -> None:
    system = ("You are Ava, the support assistant of {{company}}, speaking with {{user_name}}."
              "\n\n" + style_guide())
    es, r = analyse(evalset(tmp_path, system, TWO_CASES), profile)
    after = r.reordered_prompt["system"]
    assert after.startswith("You are Ava, the support assistant of {{company}}.\n\n")
    assert after.rstrip().endswith("Speaking with {{user_name}}.")


def test_list_items_stay_in_their_list(tmp_path: Path, profile: Profile) -> None:
    tools = ("## read_file\nRead a file.\nParameters:\n- path: a path under {{cwd}}\n"
             "- limit: how many lines\n\n")
    system = "You are a coding agent.\n\n" + tools + style_guide()
    cases = """
  - {id: a, vars: {cwd: /srv/a, question: "x"}}
  - {id: b, vars: {cwd: /srv/b, question: "y"}}
"""
    es, r = analyse(evalset(tmp_path, system, cases), profile)
    [cwd] = [e for e in r.dynamic_elements if e.var == "cwd"]
    assert cwd.movable is False and "inside a" in (cwd.why or "")
    assert r.reordered_prompt is None  # nothing may move: the item keeps its list
    assert any(n.startswith("{{cwd}} (per_call) stays: inside a") for n in r.notes)
    assert r.cacheable_prefix_tokens == 0  # the prefix ends at the item (below the minimum)


def test_per_deployment_variable_keeps_the_prefix(tmp_path: Path, profile: Profile) -> None:
    system = "You answer for {{company}}.\n\n" + style_guide()
    cases = """
  - {id: a, vars: {company: Acme, question: "Why?"}}
  - {id: b, vars: {company: Acme, question: "How?"}}
"""
    path = evalset(tmp_path, system, cases)
    es, inferred = analyse(path, profile)
    assert [(v.var, v.rate, v.source) for v in inferred.variables] == [
        ("company", "per_deployment", "inferred"), ("question", "per_call", "inferred")]
    assert any("{{company}} inferred per_deployment (the same in all 2 cases)" in n
               for n in inferred.notes)
    assert inferred.cacheable_prefix_tokens > 1700 and inferred.status == "pass"
    # Declared per call, the same prompt caches nothing and costs more.
    text = path.read_text().replace("prompt:\n", "vars_meta: {company: {rate: per_call}}\nprompt:\n")
    path.write_text(text)
    _, declared = analyse(path, profile)
    assert declared.variables[0].source == "declared"
    assert declared.cacheable_prefix_tokens < 20
    assert declared.cost_per_1k_calls_usd > 2 * inferred.cost_per_1k_calls_usd


@pytest.mark.parametrize(("model", "minimum"), [
    ("anthropic/claude-3-haiku-20240307", 2048),
    ("anthropic/claude-3-5-haiku-20241022", 2048),
    ("anthropic/claude-sonnet-4-5", 1024),
    ("anthropic/claude-opus-4-5", 4096),
    ("anthropic/claude-haiku-4-5", 4096),
    ("openai/gpt-4o", 1024),
    ("gemini/gemini-2.5-flash", 1024),
])
def test_minimum_cacheable_per_model(model: str, minimum: int, profile: Profile) -> None:
    assert cache_pricing(profile, model).min_cacheable_tokens == minimum


def test_haiku_3_prompt_below_2048_is_priced_uncached(tmp_path: Path, profile: Profile) -> None:
    guide = style_guide().split("## 11.")[0]  # about 1,300 tokens
    es, r = analyse(evalset(tmp_path, guide, TWO_CASES,
                            model="anthropic/claude-3-haiku-20240307"), profile)
    assert r.min_cacheable_tokens == 2048
    assert 1024 < r.levels[0].tokens < 2048  # it would cache on Sonnet
    assert r.cacheable_prefix_tokens == 0 and r.cache_read_share == 0
    p = cache_pricing(profile, es.production_model).price
    full = 1000 * (r.prompt_tokens * p.input + r.assumed_output_tokens * p.output)
    assert r.cost_per_1k_calls_usd == pytest.approx(full, rel=1e-6)


def test_single_anthropic_block_with_per_call_tail_is_flagged(tmp_path: Path,
                                                             profile: Profile) -> None:
    system = style_guide() + "\n\nCurrent user: {{user_name}}"
    es, r = analyse(evalset(tmp_path, system, TWO_CASES), profile)
    assert r.cacheable_prefix_tokens == 0  # the only block boundary is after the tail
    assert r.status == "warn" and r.reordered_prompt is None  # nothing needs to move
    [split] = r.block_split
    # The block ends before the line that holds the value, so its label goes with it.
    assert split["message"] == "system"
    assert split["after_text"].endswith(style_guide().rstrip()[-30:])
    assert r.reordered_prefix_tokens - 10 < split["at_token"] <= r.reordered_prefix_tokens
    assert r.reordered_prefix_tokens > 1700
    note = next(n for n in r.notes if "Split it" in n)
    assert "per-call tail ({{user_name}})" in note and "cache_control" in note
    assert r.reordered_cost_per_1k_calls_usd < 0.5 * r.cost_per_1k_calls_usd
    # OpenAI caches the same prompt automatically: no split, the prefix in 128-token steps.
    _, o = analyse(evalset(tmp_path, system, TWO_CASES, model="openai/gpt-4o"), profile)
    assert o.block_split == [] and o.cacheable_prefix_tokens >= 1024
    assert (o.cacheable_prefix_tokens - 1024) % 128 == 0


def test_costs_count_input_and_output_and_say_so(tmp_path: Path, profile: Profile) -> None:
    es, r = analyse(evalset(tmp_path, style_guide(), TWO_CASES,
                            extra="max_tokens: 120\n"), profile)
    assert r.counts == "input and output" and r.assumed_output_tokens == 120
    assert "120 output tokens assumed" in r.output_tokens_source
    assert "60 calls per hour" in r.assumptions
    p = cache_pricing(profile, SONNET).price
    assert r.cost_per_1k_calls_usd > 1000 * 120 * p.output
    # A slower call rate lowers the hit rate and raises the cost.
    _, slow = analyse(evalset(tmp_path, style_guide(), TWO_CASES, extra="max_tokens: 120\n"),
                      profile, calls_per_hour=2)
    assert slow.cache_read_share < r.cache_read_share
    assert slow.cost_per_1k_calls_usd > r.cost_per_1k_calls_usd


def test_tokenizers_per_model() -> None:
    assert ModelTokenizer("openai/gpt-4o").encoding == "o200k_base"
    assert ModelTokenizer("openai/gpt-4.1-mini").encoding == "o200k_base"
    assert ModelTokenizer("openai/gpt-4-turbo").encoding == "cl100k_base"
    claude = ModelTokenizer(SONNET)
    assert claude.margin == pytest.approx(1.10) and "x 1.10" in claude.description
    assert claude.scale(1000) == 1100


@pytest.mark.parametrize(("prefix", "cached"), [(1000, 0), (1024, 1024), (1151, 1024),
                                                (1152, 1152), (2000, 1920)])
def test_openai_caches_in_128_token_steps(prefix: int, cached: int) -> None:
    assert cache_model("openai/gpt-4o").cached_length(prefix) == cached


def test_hit_probability_by_rate_and_lifetime() -> None:
    assert hit_probability("per_call", 300, 60) == 0
    five = hit_probability("per_deployment", 300, 60)
    assert five == pytest.approx(1 - 2.718281828 ** -5, rel=1e-6)
    assert hit_probability("per_deployment", 3600, 60) > five
    assert hit_probability("per_session", 300, 60) < hit_probability("per_day", 300, 60) < five


@pytest.mark.parametrize(("name", "values", "kind", "rate"), [
    ("company", ["Acme", "Acme"], "placeholder", "per_deployment"),
    ("cwd", ["/a", "/a"], "placeholder", "per_session"),
    ("today", ["2026-01-02", "2026-01-03"], "date", "per_day"),
    ("question", ["a", "b"], "placeholder", "per_call"),
    ("now", ["09:00:00", "09:00:00"], "timestamp", "per_call"),
    ("topic", ["x"], "placeholder", "per_call"),
])
def test_rate_inference(name: str, values: list[str], kind: str, rate: str) -> None:
    assert infer_rate(name, values, kind)[0] == rate


def test_vars_meta_is_validated(tmp_path: Path) -> None:
    path = evalset(tmp_path, "Be brief.", TWO_CASES, extra="vars_meta: {nope: {rate: per_call}}\n")
    with pytest.raises(ConfigError) as err:
        load_evalset(path)
    assert "vars_meta.nope" in str(err.value) and "not a variable" in str(err.value)
    path = evalset(tmp_path, "Be brief.", TWO_CASES,
                   extra="vars_meta: {question: {rate: hourly}}\n")
    with pytest.raises(ConfigError) as err:
        load_evalset(path)
    assert "vars_meta.question.rate" in str(err.value)
