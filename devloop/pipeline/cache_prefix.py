"""Rendering and prefix measurement for the cache-order stage: the provider layout (tools,
system, messages), token positions, the dynamic spans with their rates, the stable prefix
per rate, the block ends Anthropic can break at, and the provider-cached levels. Pure.
"""

from __future__ import annotations

import json
from typing import Any

from devloop.evals.evalset import PLACEHOLDER, EvalSet, render_template, var_to_text
from devloop.pipeline.cache_prices import CachePricing, Level
from devloop.pipeline.dynamics import literal_dynamics, placeholder_kind
from devloop.pipeline.rates import RATE_ORDER, Rate, literal_rate, variable_rates
from devloop.pipeline.reorder import Dyn
from devloop.pipeline.structure import container_at, containers

LEVEL_RATES = (("per_deployment", "per_day"), ("per_day", "per_session"),
               ("per_session", "per_call"))


# -- rendering ------------------------------------------------------------------------------
def _layout(messages: list[dict[str, str]], tools: list[dict[str, Any]] | None
            ) -> tuple[str, list[int]]:
    """One text in the order providers cache (tools, system, messages) and the offset of each
    message's content in it."""
    parts: list[str] = []
    offsets: list[int] = []
    size = 0
    if tools:
        head = "<|tools|>\n" + json.dumps(tools, sort_keys=True, ensure_ascii=False) + "\n"
        parts.append(head)
        size += len(head)
    for message in messages:
        head = f"<|{message['role']}|>\n"
        offsets.append(size + len(head))
        piece = head + message["content"] + "\n"
        parts.append(piece)
        size += len(piece)
    return "".join(parts), offsets


def _render(templates: list[dict[str, str]], case_vars: dict[str, Any]) -> list[dict[str, str]]:
    return [{"role": t["role"], "content": render_template(t["content"], case_vars)}
            for t in templates]


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def token_position(templates: list[dict[str, str]], tools: list[dict[str, Any]] | None,
                   case_vars: dict[str, Any], message: int, char: int, tokenizer: Any) -> int:
    """Raw token offset, in the rendered prompt, of template character ``char`` of
    ``message``."""
    text, offsets = _layout(_render(templates, case_vars), tools)
    head = render_template(templates[message]["content"][:char], case_vars)
    return len(tokenizer.encode(text[: offsets[message] + len(head)]))


def _block_ends(templates: list[dict[str, str]], tools: list[dict[str, Any]] | None,
                case_vars: dict[str, Any], tokenizer: Any) -> list[int]:
    """Raw token offsets where a block ends (Anthropic breakpoints can go only there)."""
    text, offsets = _layout(_render(templates, case_vars), tools)
    ends = [len(tokenizer.encode(text[:offsets[0]].rsplit("<|", 1)[0]))] if tools else []
    rendered = _render(templates, case_vars)
    for i, m in enumerate(rendered):
        ends.append(len(tokenizer.encode(text[:offsets[i] + len(m["content"])])))
    return ends


# -- dynamic spans and their rates ----------------------------------------------------------
def dynamic_spans(evalset: EvalSet, templates: list[dict[str, str]]
                  ) -> tuple[list[Dyn], dict[str, str], dict[str, Rate]]:
    """Every placeholder and literal dynamic in ``templates`` with its rate; also each
    variable's kind and rate record."""
    values = {n: [c.vars.get(n) for c in evalset.cases] for n in evalset.prompt.variables()}
    kinds = {n: placeholder_kind(n, v) for n, v in values.items()}
    rates = variable_rates(evalset, kinds)
    dyns: list[Dyn] = []
    for i, t in enumerate(templates):
        for m in PLACEHOLDER.finditer(t["content"]):
            dyns.append(Dyn(i, m.start(), m.end(), rates[m.group(1)].rate, m.group(0),
                            m.group(1)))
        conts = containers(t["content"])
        for kind, s, e in literal_dynamics(t["content"]):
            if container_at(conts, s) is not None:
                continue  # a date in an example, a list or code is illustration, not a value
            text = t["content"][s:e]
            dyns.append(Dyn(i, s, e, literal_rate(kind, text), text))
    return sorted(dyns, key=lambda d: (d.message, d.start)), kinds, rates


def stable_prefixes(templates: list[dict[str, str]], tools: list[dict[str, Any]] | None,
                    dyns: list[Dyn], vars_a: dict[str, Any], tokenizer: Any) -> dict[str, int]:
    """Raw token length of the prefix that survives a change of every value of ``rate`` or
    faster, for per_call, per_session and per_day."""
    base = tokenizer.encode(_layout(_render(templates, vars_a), tools)[0])
    out: dict[str, int] = {}
    for rate in ("per_call", "per_session", "per_day"):
        changed = {d.var for d in dyns if d.var and RATE_ORDER[d.rate] >= RATE_ORDER[rate]}
        vars_b = {k: ("\u00a7" + var_to_text(v) if k in changed else v)
                  for k, v in vars_a.items()}
        other = tokenizer.encode(_layout(_render(templates, vars_b), tools)[0])
        n = _common_prefix(base, other)
        for d in dyns:
            if d.var is None and RATE_ORDER[d.rate] >= RATE_ORDER[rate]:
                n = min(n, token_position(templates, tools, vars_a, d.message, d.start,
                                          tokenizer))
        out[rate] = n
    return out


def _levels(stable: dict[str, int], scale: Any, pricing: CachePricing,
            ends: list[int] | None) -> list[Level]:
    """Provider-cached lengths per level; ``ends`` limits Anthropic to block boundaries."""
    cm = pricing.model
    levels: list[Level] = []
    for rate, key in LEVEL_RATES:
        length = float(scale(stable[key]))
        if cm is None or cm.kind == "none":
            cached = 0.0
        elif cm.breakpoints:
            usable = [float(scale(e)) for e in (ends or [])] if ends is not None else [length]
            fit = max((u for u in usable if u <= length), default=0.0)
            cached = fit if cm.min_tokens is not None and fit >= cm.min_tokens else 0.0
        else:
            cached = cm.cached_length(length)
        if cached > (levels[-1].tokens if levels else 0.0):
            levels.append(Level(rate, cached))
    return levels


def template_where(templates: list[dict[str, str]], i: int) -> str:
    """Where template ``i`` stands in the eval set: ``system`` or ``messages[n]``."""
    has_system = bool(templates) and templates[0]["role"] == "system"
    return "system" if has_system and i == 0 else f"messages[{i - 1 if has_system else i}]"
