"""Stage 3, cache order: how much of a prompt the production model's prompt cache reuses,
what that costs for 1,000 calls (input and output), and a reorder that keeps the meaning.

Each variable has a change rate (declared in ``vars_meta`` or inferred, see rates.py), so
the prompt has up to three reusable prefixes: what stays across days, within a day, within
a session. Each is measured in the model's tokens by rendering the prompt twice with the
faster-changing values changed and taking the common token prefix; then the provider's
rules decide what is cached (providers.py: minimum length, OpenAI's 128-token steps,
Anthropic's breakpoints on block boundaries), and the hit model prices it (cache_prices.py).
The suggestion moves the smallest unit holding a fast value, never out of a container
(reorder.py, structure.py), and for Anthropic says where blocks split and breakpoints go.
Pure: functions over an EvalSet, a tokenizer and prices; no I/O.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from devloop.evals.evalset import EvalSet
from devloop.pipeline.cache_prefix import (
    _block_ends,
    _layout,
    _levels,
    dynamic_spans,
    stable_prefixes,
    template_where,
    token_position,
)
from devloop.pipeline.cache_prices import CachePricing, Level, best_cost, cache_pricing
from devloop.pipeline.dynamics import DynamicKind, literal_dynamics
from devloop.pipeline.providers import ModelTokenizer
from devloop.pipeline.rates import DEFAULT_CALLS_PER_HOUR, RATE_ORDER, assumptions
from devloop.pipeline.reorder import (
    Dyn,
    dump_prompt,
    placeholders,
    plan_reorder,
    refer_to_one_place,
    repeated_values,
    unified_diff,
)
from devloop.pipeline.structure import containers, unit_at

__all__ = ["CachePricing", "CacheOrderResult", "analyse_cache_order", "cache_pricing"]

MIN_STATIC_AFTER_TOKENS = 64
MIN_GAIN_TOKENS = 64  # a suggestion must cache at least this much more at some level
# A level's rate -> the stable-prefix key that bounds it.
LEVEL_KEY = {"per_deployment": "per_day", "per_day": "per_session", "per_session": "per_call"}
DEFAULT_OUTPUT_TOKENS = 250


class DynamicElement(BaseModel):
    kind: DynamicKind
    position: int  # token offset in the rendered prompt (the model's tokens)
    text: str
    message: int
    var: str | None = None
    rate: str = "per_call"
    static_after_tokens: int = 0
    movable: bool | None = None
    why: str | None = None  # why it cannot move


class VariableRate(BaseModel):
    var: str
    rate: str
    source: Literal["declared", "inferred"]
    why: str


class CacheLevel(BaseModel):
    rate: str  # values of this rate or slower precede this length
    tokens: int  # the reusable prefix
    cached_tokens: int  # what the provider caches of it as the prompt stands
    reordered_cached_tokens: int


class CacheOrderResult(BaseModel):
    status: Literal["pass", "warn", "fail", "error", "skipped"]
    production_model: str
    cacheable_prefix_tokens: int
    min_cacheable_tokens: int | None
    dynamic_before_static: list[DynamicElement]
    reordered_prefix_tokens: int
    cost_per_1k_calls_usd: float | None
    reordered_cost_per_1k_calls_usd: float | None
    prompt_tokens: float
    assumed_output_tokens: float
    dynamic_elements: list[DynamicElement] = Field(default_factory=list)
    reordered_prompt: dict[str, Any] | None = None
    notes: list[str] = Field(default_factory=list)
    provider: str = "none"
    min_cacheable_source: str = ""
    tokenizer: str = ""
    counts: str = "input and output"
    output_tokens_source: str = ""
    calls_per_hour: float = DEFAULT_CALLS_PER_HOUR
    assumptions: str = ""
    variables: list[VariableRate] = Field(default_factory=list)
    levels: list[CacheLevel] = Field(default_factory=list)
    ttl: str | None = None
    reordered_ttl: str | None = None
    cache_read_share: float = 0.0
    reordered_cache_read_share: float = 0.0
    block_split: list[dict[str, Any]] = Field(default_factory=list)
    unmovable: list[DynamicElement] = Field(default_factory=list)
    repeated_values: dict[str, int] = Field(default_factory=dict)
    reordered_diff: str | None = None
    moved_values: list[str] = Field(default_factory=list)  # the values whose unit moves
    referred_values: dict[str, str] = Field(default_factory=dict)  # var -> the reference used


# -- the stage ------------------------------------------------------------------------------
def _as_prompt(templates: list[dict[str, str]], tools: list[dict[str, Any]] | None
               ) -> dict[str, Any]:
    system = [t["content"] for t in templates if t["role"] == "system"][:1]
    rest = templates[1:] if system and templates[0]["role"] == "system" else templates
    prompt: dict[str, Any] = {"system": system[0]} if system else {}
    prompt["messages"] = [{"role": t["role"], "content": t["content"]} for t in rest]
    if tools:
        prompt["tools"] = tools
    return prompt


def _static_after(templates: list[dict[str, str]], d: Dyn, end: int, dyns: list[Dyn],
                  tok: Any) -> int:
    rest = templates[d.message]["content"][end:]
    later = sorted((x for x in dyns if x.message == d.message and x.start >= end
                    and RATE_ORDER[x.rate] >= RATE_ORDER[d.rate]), key=lambda x: -x.start)
    for x in later:
        rest = rest[:x.start - end] + rest[x.end - end:]
    return int(tok.scale(len(tok.encode(rest.strip()))))


def _elements(evalset: EvalSet, templates: list[dict[str, str]], dyns: list[Dyn],
              kinds: dict[str, str], vars_a: dict[str, Any], tok: Any) -> list[DynamicElement]:
    out: list[DynamicElement] = []
    conts = [containers(t["content"]) for t in templates]
    for d in dyns:
        content = templates[d.message]["content"]
        unit = unit_at(content, d.start, d.end, conts[d.message],
                       first_sentence=d.message == 0 and templates[0]["role"] == "system")
        kind = kinds.get(d.var, "placeholder") if d.var else _literal_kind(d.text)
        out.append(DynamicElement(
            kind=kind,  # type: ignore[arg-type]
            position=int(tok.scale(token_position(templates, evalset.prompt.tools, vars_a,
                                                  d.message, d.start, tok))),
            text=d.text, message=d.message, var=d.var, rate=d.rate,
            static_after_tokens=_static_after(templates, d, unit.end, dyns, tok),
            movable=unit.movable, why=unit.why or None))
    return sorted(out, key=lambda e: e.position)


def _literal_kind(text: str) -> str:
    found = literal_dynamics(text)
    return found[0][0] if found else "placeholder"


def _split_point(templates: list[dict[str, str]], tools: list[dict[str, Any]] | None,
                 vars_a: dict[str, Any], tok: Any, dyns: list[Dyn], level: Level, raw: int
                 ) -> dict[str, Any]:
    """Where to end the cached block: before the line, sentence or clause that holds the
    first value past the level (so its label goes with it)."""
    near = sorted((abs(pos - raw), i, d) for i, d in enumerate(dyns)
                  if RATE_ORDER[d.rate] > RATE_ORDER[level.rate]
                  and (pos := token_position(templates, tools, vars_a, d.message, d.start, tok))
                  >= raw - 3)
    for _dist, _i, d in near[:1]:
        content = templates[d.message]["content"]
        unit = unit_at(content, d.start, d.end, containers(content),
                       first_sentence=d.message == 0 and templates[0]["role"] == "system")
        head = content[:unit.start]
        at = token_position(templates, tools, vars_a, d.message, len(head.rstrip()), tok)
        return {"message": template_where(templates, d.message),
                "after_text": re.sub(r"\s+", " ", head).strip()[-60:],
                "at_token": int(tok.scale(at))}
    return {"message": "prompt", "after_text": "", "at_token": int(level.tokens)}


def analyse_cache_order(
    evalset: EvalSet,
    pricing: CachePricing,
    tokenizer: Any = None,
    *,
    production_model: str,
    output_tokens: float | None = None,
    calls_per_hour: float = DEFAULT_CALLS_PER_HOUR,
    min_static_after: int = MIN_STATIC_AFTER_TOKENS,
) -> CacheOrderResult:
    """Measure the reusable prefixes now and after the suggested reorder, and price both.

    ``output_tokens``: the completion length to price; by default the eval set's
    ``max_tokens`` or DEFAULT_OUTPUT_TOKENS, whichever is smaller (stated in the result)."""
    tok = tokenizer if hasattr(tokenizer, "scale") else ModelTokenizer(production_model)
    templates = evalset.prompt.templates()
    tools = evalset.prompt.tools
    vars_a = dict(evalset.cases[0].vars)
    dyns, kinds, rates = dynamic_spans(evalset, templates)
    cm = pricing.model
    if output_tokens is None:
        output_tokens = float(min(DEFAULT_OUTPUT_TOKENS, evalset.max_tokens or 10**9))
        out_source = (f"{output_tokens:.0f} output tokens assumed per call (the eval set's "
                      "max_tokens)" if evalset.max_tokens and evalset.max_tokens < DEFAULT_OUTPUT_TOKENS
                      else f"{output_tokens:.0f} output tokens assumed per call (no measured "
                      "length; set max_tokens in the eval set to bound it)")
    else:
        out_source = f"{output_tokens:.0f} output tokens per call (given)"

    elements = _elements(evalset, templates, dyns, kinds, vars_a, tok)
    before_static = [e for e in elements if e.rate != "per_deployment"
                     and e.static_after_tokens >= min_static_after]

    ref_templates, ref_dyns, referred = refer_to_one_place(templates, dyns)
    plan = plan_reorder(ref_templates, ref_dyns)
    moved = plan.changed or bool(referred)
    new_templates = plan.templates if moved else templates

    stable = stable_prefixes(templates, tools, dyns, vars_a, tok)
    ends = _block_ends(templates, tools, vars_a, tok)
    now_levels = _levels(stable, tok.scale, pricing, ends)
    # Suggestions may split blocks where the levels end (Anthropic): any length is usable.
    split_only = _levels(stable, tok.scale, pricing, None)
    new_stable, new_levels = stable, split_only
    if moved:
        new_dyns = dynamic_spans(evalset, new_templates)[0]
        new_stable = stable_prefixes(new_templates, tools, new_dyns, vars_a, tok)
        new_levels = _levels(new_stable, tok.scale, pricing, None)
        if _gain(split_only, new_levels) < MIN_GAIN_TOKENS:  # not worth changing the text
            moved, new_templates, new_stable, new_levels = False, templates, stable, split_only
            plan.moved.clear()
            referred = {}
    if _gain(now_levels, new_levels) < MIN_GAIN_TOKENS:
        new_levels = now_levels

    prompt_tokens = sum(
        tok.scale(len(tok.encode(_layout(evalset.render(c.vars), tools)[0])))
        for c in evalset.cases) / len(evalset.cases)
    now_cost, ttl, now_share = best_cost(pricing, now_levels, prompt_tokens, output_tokens,
                                         calls_per_hour)
    new_cost, new_ttl, new_share = best_cost(pricing, new_levels, prompt_tokens,
                                             output_tokens, calls_per_hour)

    levels = []
    for rate, key in LEVEL_KEY.items():
        levels.append(CacheLevel(
            rate=rate, tokens=int(tok.scale(stable[key])),
            cached_tokens=int(max((lv.tokens for lv in now_levels
                                   if RATE_ORDER[lv.rate] <= RATE_ORDER[rate]), default=0)),
            reordered_cached_tokens=int(max((lv.tokens for lv in new_levels
                                             if RATE_ORDER[lv.rate] <= RATE_ORDER[rate]),
                                            default=0))))

    notes: list[str] = []
    inferred = [r for r in rates.values() if r.source == "inferred"]
    for r in inferred:
        notes.append(f"{{{{{r.var}}}}} inferred {r.rate} ({r.why}); declare it in vars_meta")
    minimum = pricing.min_cacheable_tokens
    split: list[dict[str, Any]] = []
    if cm is not None and cm.breakpoints:
        for lv in new_levels if not moved else []:
            if lv.tokens - _cached_at(now_levels, lv.rate) >= MIN_GAIN_TOKENS:
                split.append({**_split_point(templates, tools, vars_a, tok, dyns, lv,
                                             stable[LEVEL_KEY[lv.rate]]),
                              "rate": lv.rate, "tail": _tail(elements, lv)})
        for s in split:
            notes.append(f"Anthropic caches only up to a cache_control breakpoint on a block "
                         f"boundary: {s['message']} is one block with a {s['tail']}, so "
                         f"it caches nothing past it. Split it: end the first block "
                         f"after {s['after_text']!r} (token {s['at_token']:,}) and put "
                         f"cache_control {{type: ephemeral}} on it; the tail goes in a second "
                         "block")
    for var, wording in referred.items():
        notes.append(f"{{{{{var}}}}} is also written inside a container that cannot move: the "
                     f"suggestion states it once and refers to it there as {wording!r}")
    if moved:
        old_len = now_levels[-1].tokens if now_levels else 0
        new_len = new_levels[-1].tokens if new_levels else 0
        notes.append("static first, dynamic last (moving only the sentence, line or clause "
                     f"holding each value): cacheable prefix {old_len:,.0f} -> {new_len:,.0f} "
                     "tokens")
        if cm is not None and cm.breakpoints:
            for lv in new_levels:
                notes.append(f"breakpoint: cache_control after token {lv.tokens:,.0f} "
                             f"(end of the {lv.rate.replace('_', '-')} part)")
    for e in elements:
        if e.why and e.static_after_tokens >= min_static_after and e.rate != "per_deployment" \
                and e.var not in referred:
            notes.append(f"{e.text} ({e.rate}) stays: {e.why}; the prefix that survives a "
                         f"change of it ends at token {e.position:,}")
    for var, n in repeated_values(templates).items():
        notes.append(f"{{{{{var}}}}} is written {n} times: state it once (e.g. at the end) "
                     "and refer to it elsewhere")
    if cm is None or cm.kind == "none":
        notes.append(f"{production_model}: no prompt caching known for this provider")
    elif not now_levels:
        best = max(tok.scale(v) for v in stable.values())
        if minimum is not None and best < minimum:
            notes.append(f"static prefix {best:,.0f} tokens is below the provider minimum "
                         f"{minimum:,}: nothing is cached")
    if pricing.price is None:
        notes.append(f"{production_model}: price unknown")

    moved_any = moved
    reordered = _as_prompt(new_templates, tools) if moved_any else None
    diff = None
    if reordered is not None:
        diff = unified_diff(dump_prompt(_as_prompt(templates, tools)), dump_prompt(reordered),
                            evalset.name)
        if placeholders(new_templates) != placeholders(templates):  # never ship a changed one
            reordered, diff = None, None
    return CacheOrderResult(
        status="warn" if (before_static and moved_any) or split else "pass",
        production_model=production_model,
        cacheable_prefix_tokens=int(now_levels[-1].tokens) if now_levels else 0,
        min_cacheable_tokens=minimum,
        dynamic_before_static=before_static,
        reordered_prefix_tokens=int(new_levels[-1].tokens) if new_levels else 0,
        cost_per_1k_calls_usd=now_cost,
        reordered_cost_per_1k_calls_usd=new_cost,
        prompt_tokens=round(prompt_tokens, 1),
        assumed_output_tokens=round(output_tokens, 1),
        dynamic_elements=elements,
        reordered_prompt=reordered,
        notes=notes,
        provider=cm.kind if cm else "none",
        min_cacheable_source=cm.min_source if cm else "",
        tokenizer=getattr(tok, "description", "cl100k_base"),
        output_tokens_source=out_source,
        calls_per_hour=calls_per_hour,
        assumptions=assumptions(calls_per_hour),
        variables=[VariableRate(var=r.var, rate=r.rate, source=r.source, why=r.why)
                   for r in rates.values()],
        levels=levels,
        ttl=ttl if now_levels else None,
        reordered_ttl=new_ttl if new_levels else None,
        cache_read_share=now_share,
        reordered_cache_read_share=new_share,
        block_split=split,
        unmovable=[e for e in elements if e.why and e.rate != "per_deployment"
                   and e.static_after_tokens >= min_static_after],
        repeated_values=repeated_values(templates),
        reordered_diff=diff,
        moved_values=sorted({d.text for d, _u in plan.moved}) if moved_any else [],
        referred_values=referred,
    )


def _cached_at(levels: list[Level], rate: str) -> float:
    """What is cached for calls that share values of ``rate`` and slower."""
    return max((lv.tokens for lv in levels if RATE_ORDER[lv.rate] <= RATE_ORDER[rate]),
               default=0.0)


def _gain(before: list[Level], after: list[Level]) -> float:
    return max(_cached_at(after, r) - _cached_at(before, r) for r in LEVEL_KEY)


def _tail(elements: list[DynamicElement], level: Level) -> str:
    """How often the text right after a level's end changes."""
    nxt = next((e for e in elements if e.position >= level.tokens - 3
                and RATE_ORDER[e.rate] > RATE_ORDER[level.rate]), None)
    rate = nxt.rate if nxt else "per_call"
    return rate.replace("_", "-") + " tail" + (f" ({nxt.text})" if nxt else "")
