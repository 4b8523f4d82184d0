"""Stage 3, cache order: how much of a prompt a provider's prompt cache can reuse.

Providers cache the longest *prefix* shared by consecutive calls (tools, then system, then
messages), and only once it reaches a minimum length. So the measure is: render the prompt
with two different var sets, tokenise both (cl100k_base) and take the longest common token
prefix. Anything that varies per call (placeholders, timestamps, ids, per-user data) placed
before static text ends that prefix early; moving it after the static text (static first,
dynamic last) is the suggested reordering, priced with the production model's cache read
and write prices.

Pure: functions over an EvalSet, a tokenizer and prices; no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from devloop.evals.evalset import PLACEHOLDER, EvalSet, render_template, var_to_text
from devloop.pipeline.cache_prices import CachePricing, cost_per_1k_calls
from devloop.tokens import Tokenizer

DynamicKind = Literal["timestamp", "date", "id", "user", "document", "placeholder"]
DOCUMENT_CHARS = 800  # a var this long per call is a document (an email, a diff, a page)
# A dynamic element is worth moving when at least this much static text follows it.
MIN_STATIC_AFTER_TOKENS = 64

_MONTHS = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
# Literal text that an application almost always fills in per call, even when an eval set
# pins it: the order matters (timestamps before the dates they contain).
LITERAL_PATTERNS: list[tuple[DynamicKind, re.Pattern[str]]] = [
    ("timestamp", re.compile(
        r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?\b")),
    ("timestamp", re.compile(r"\b\d{1,2}:\d{2}:\d{2}\b")),
    ("date", re.compile(r"\b\d{4}-\d{2}-\d{2}\b")),
    ("date", re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b")),
    ("date", re.compile(rf"\b{_MONTHS} \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}\b")),
    ("date", re.compile(rf"\b\d{{1,2}} {_MONTHS} \d{{4}}\b")),
    ("id", re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                      r"[0-9a-fA-F]{12}\b")),
    ("id", re.compile(r"\b(?:req|sess|session|usr|user|cus|msg|chatcmpl|run|trace|org)"
                      r"[_-][A-Za-z0-9]{8,}\b")),
    ("id", re.compile(r"\b[0-9a-f]{16,}\b")),
]
_NAME_KINDS: list[tuple[DynamicKind, re.Pattern[str]]] = [
    ("timestamp", re.compile(r"(^|_)(time|timestamp|ts|now|datetime)(_|$)", re.I)),
    ("date", re.compile(r"(^|_)(date|today|day)(_|$)", re.I)),
    ("id", re.compile(r"(^|_)(id|uuid|guid|session|request|trace|nonce)(_|$)", re.I)),
    ("user", re.compile(r"user|name|email|customer|account|tenant|org|member|person|author"
                        r"|locale|profile|reviewer|owner|assignee|client|recipient|sender"
                        r"|employee|patient|student|contact|phone|address|city|country", re.I)),
]
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)*")


class DynamicElement(BaseModel):
    kind: DynamicKind
    position: int  # token offset in the rendered prompt
    text: str  # the placeholder ("{{now}}") or the literal text found
    message: int  # index in the rendered messages (system first)
    var: str | None = None
    static_after_tokens: int = 0


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


@dataclass(frozen=True, slots=True)
class _Segment:
    start: int
    end: int
    sep: str  # the separator that followed it in the original text
    dynamic: bool


# -- finding dynamic content ----------------------------------------------------------------
def literal_dynamics(text: str) -> list[tuple[DynamicKind, int, int]]:
    """Timestamps, dates and ids written literally in ``text`` (outside placeholders)."""
    blocked = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(text)]
    found: list[tuple[DynamicKind, int, int]] = []
    for kind, pattern in LITERAL_PATTERNS:
        for m in pattern.finditer(text):
            span = (m.start(), m.end())
            if any(s < span[1] and span[0] < e for s, e in blocked):
                continue
            found.append((kind, *span))
            blocked.append(span)
    return sorted(found, key=lambda f: f[1])


def _looks_like(kind: DynamicKind, value: str) -> bool:
    return any(k == kind and p.fullmatch(value.strip()) for k, p in LITERAL_PATTERNS)


def placeholder_kind(name: str, values: list[Any]) -> DynamicKind:
    """Classify a placeholder by the values the cases give it, then by its name."""
    texts = [var_to_text(v) for v in values if v is not None]
    for kind in ("timestamp", "date", "id"):
        if texts and all(_looks_like(kind, t) for t in texts):
            return kind  # type: ignore[return-value]
    if texts and sum(len(t) for t in texts) / len(texts) >= DOCUMENT_CHARS:
        return "document"
    for kind, pattern in _NAME_KINDS:
        if pattern.search(name):
            return kind
    return "placeholder"


def _is_dynamic(text: str) -> bool:
    return bool(PLACEHOLDER.search(text)) or bool(literal_dynamics(text))


def segments(content: str, tokenizer: Tokenizer, min_static_after: int) -> list[_Segment]:
    """Split a message into paragraphs; a dynamic paragraph that also carries a lot of static
    text is split into lines so the static lines can stay in the prefix."""
    out: list[_Segment] = []
    pos = 0
    for m in [*_PARAGRAPH_BREAK.finditer(content), None]:
        end = m.start() if m else len(content)
        sep = m.group(0) if m else ""
        para = content[pos:end]
        if _is_dynamic(para) and "\n" in para:
            lines = para.split("\n")
            static_tokens = sum(len(tokenizer.encode(ln)) for ln in lines if not _is_dynamic(ln))
            if static_tokens >= min_static_after:
                start = pos
                for i, line in enumerate(lines):
                    last = i == len(lines) - 1
                    out.append(_Segment(start, start + len(line), sep if last else "\n",
                                        _is_dynamic(line)))
                    start += len(line) + 1
                pos = m.end() if m else len(content)
                continue
        out.append(_Segment(pos, end, sep, _is_dynamic(para)))
        pos = m.end() if m else len(content)
    return out


# -- layout and prefix ----------------------------------------------------------------------
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
                    case_vars: dict[str, Any], message: int, char: int,
                    tokenizer: Tokenizer) -> int:
    """Token offset, in the rendered prompt, of template character ``char`` of ``message``."""
    rendered = _render(templates, case_vars)
    text, offsets = _layout(rendered, tools)
    head = render_template(templates[message]["content"][:char], case_vars)
    return len(tokenizer.encode(text[: offsets[message] + len(head)]))


def _prefix_tokens(templates: list[dict[str, str]], tools: list[dict[str, Any]] | None,
                   vars_a: dict[str, Any], vars_b: dict[str, Any], tokenizer: Tokenizer) -> int:
    """The longest common token prefix of two renders, cut at the first literal timestamp or
    id (it is identical in an eval set but differs between real calls)."""
    a = tokenizer.encode(_layout(_render(templates, vars_a), tools)[0])
    b = tokenizer.encode(_layout(_render(templates, vars_b), tools)[0])
    prefix = _common_prefix(a, b)
    for i, t in enumerate(templates):
        for _kind, start, _end in literal_dynamics(t["content"])[:1]:
            prefix = min(prefix, token_position(templates, tools, vars_a, i, start, tokenizer))
    return prefix


def var_sets(evalset: EvalSet) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two var sets that differ in every placeholder: the first case, and the first case
    that differs from it with any shared value changed (every placeholder varies per call)."""
    first = dict(evalset.cases[0].vars)
    other = next((dict(c.vars) for c in evalset.cases[1:] if c.vars != first), dict(first))
    for name in evalset.prompt.variables():
        if var_to_text(other.get(name)) == var_to_text(first.get(name)):
            other[name] = "\u00a7" + var_to_text(first.get(name))
    return first, other


def reorder(templates: list[dict[str, str]], messages: set[int], tokenizer: Tokenizer,
            min_static_after: int = MIN_STATIC_AFTER_TOKENS) -> list[dict[str, str]]:
    """Static segments first, dynamic ones last, inside each of ``messages``; message order
    is kept (conversation turns cannot move)."""
    out: list[dict[str, str]] = []
    for i, t in enumerate(templates):
        if i not in messages:
            out.append(dict(t))
            continue
        content = t["content"]
        segs = segments(content, tokenizer, min_static_after)

        def join(group: list[_Segment], content: str = content) -> str:
            return "".join(content[s.start:s.end] + (s.sep if k < len(group) - 1 else "")
                           for k, s in enumerate(group))

        static = join([s for s in segs if not s.dynamic]).rstrip()
        dynamic = join([s for s in segs if s.dynamic]).rstrip()
        trailing = content[len(content.rstrip()):]
        body = "\n\n".join(p for p in (static, dynamic) if p)
        out.append({"role": t["role"], "content": body + trailing})
    return out


def _as_prompt(templates: list[dict[str, str]], tools: list[dict[str, Any]] | None
               ) -> dict[str, Any]:
    system = [t["content"] for t in templates if t["role"] == "system"][:1]
    rest = templates[1:] if system and templates[0]["role"] == "system" else templates
    prompt: dict[str, Any] = {"system": system[0]} if system else {}
    prompt["messages"] = [{"role": t["role"], "content": t["content"]} for t in rest]
    if tools:
        prompt["tools"] = tools
    return prompt


# -- the stage ------------------------------------------------------------------------------
def _elements(evalset: EvalSet, templates: list[dict[str, str]], vars_a: dict[str, Any],
              tokenizer: Tokenizer, min_static_after: int) -> list[DynamicElement]:
    tools = evalset.prompt.tools
    values = {name: [c.vars.get(name) for c in evalset.cases]
              for name in evalset.prompt.variables()}
    found: list[DynamicElement] = []
    for i, t in enumerate(templates):
        content = t["content"]
        segs = segments(content, tokenizer, min_static_after)
        static_tokens = [0 if s.dynamic else len(tokenizer.encode(content[s.start:s.end]))
                         for s in segs]
        spans: list[tuple[DynamicKind, int, int, str | None]] = [
            (placeholder_kind(m.group(1), values[m.group(1)]), m.start(), m.end(), m.group(1))
            for m in PLACEHOLDER.finditer(content)
        ]
        spans += [(kind, s, e, None) for kind, s, e in literal_dynamics(content)]
        for kind, start, end, var in spans:
            seg = next((k for k, s in enumerate(segs) if s.start <= start < s.end + 1), 0)
            found.append(DynamicElement(
                kind=kind,
                position=token_position(templates, tools, vars_a, i, start, tokenizer),
                text=content[start:end],
                message=i,
                var=var,
                static_after_tokens=sum(static_tokens[seg + 1:]),
            ))
    return sorted(found, key=lambda e: e.position)


def analyse_cache_order(
    evalset: EvalSet,
    pricing: CachePricing,
    tokenizer: Tokenizer,
    *,
    production_model: str,
    output_tokens: float = 0.0,
    min_static_after: int = MIN_STATIC_AFTER_TOKENS,
) -> CacheOrderResult:
    """Measure the cacheable prefix now and after moving dynamic content last.

    ``output_tokens`` (the mean completion length, e.g. from the draft stage) only adds the
    same output cost to both estimates so that they read as real per-call prices."""
    templates = evalset.prompt.templates()
    tools = evalset.prompt.tools
    vars_a, vars_b = var_sets(evalset)

    elements = _elements(evalset, templates, vars_a, tokenizer, min_static_after)
    before_static = [e for e in elements if e.static_after_tokens >= min_static_after]
    prefix = _prefix_tokens(templates, tools, vars_a, vars_b, tokenizer)

    reordered = reorder(templates, {e.message for e in before_static}, tokenizer,
                        min_static_after) if before_static else templates
    reordered_prefix = (_prefix_tokens(reordered, tools, vars_a, vars_b, tokenizer)
                        if before_static else prefix)

    prompt_tokens = sum(
        len(tokenizer.encode(_layout(evalset.render(c.vars), tools)[0])) for c in evalset.cases
    ) / len(evalset.cases)
    now_cost = cost_per_1k_calls(pricing, prompt_tokens, prefix, output_tokens)
    new_cost = cost_per_1k_calls(pricing, prompt_tokens, reordered_prefix, output_tokens)

    minimum = pricing.min_cacheable_tokens
    notes: list[str] = []
    for e in before_static:
        notes.append(f"{e.kind} {e.text!r} at token {e.position} comes before "
                     f"{e.static_after_tokens} tokens of static text")
    if minimum is None:
        notes.append(f"{production_model}: no prompt caching known for this provider")
    elif prefix < minimum:
        notes.append(f"cacheable prefix {prefix} tokens is below the provider minimum "
                     f"{minimum}: nothing is cached")
    if before_static:
        notes.append(f"static first, dynamic last: cacheable prefix {prefix} -> "
                     f"{reordered_prefix} tokens")
    if pricing.price is None:
        notes.append(f"{production_model}: price unknown")

    return CacheOrderResult(
        status="warn" if before_static else "pass",
        production_model=production_model,
        cacheable_prefix_tokens=prefix,
        min_cacheable_tokens=minimum,
        dynamic_before_static=before_static,
        reordered_prefix_tokens=reordered_prefix,
        cost_per_1k_calls_usd=now_cost,
        reordered_cost_per_1k_calls_usd=new_cost,
        prompt_tokens=round(prompt_tokens, 1),
        assumed_output_tokens=round(output_tokens, 1),
        dynamic_elements=elements,
        reordered_prompt=_as_prompt(reordered, tools) if before_static else None,
        notes=notes,
    )
