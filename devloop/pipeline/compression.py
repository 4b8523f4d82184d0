"""Stage 2, compression: would LLMLingua make this prompt cheaper without making it worse?

Safe by construction: URLs, numbers, identifiers, tags, placeholders and code are never shown
to the compressor (protect.py), long text goes through it in bounded windows, and each
result is cached by the text's hash. Every part is measured, always: long runs of static
text and long per-call documents (vars of hundreds of tokens). Each part's compression
saving is priced where its tokens sit (the cache-read mix inside a cached prefix, the input
price past it, from the cache-order analysis, which always runs first) and shown next to
what caching saves on the same text; the larger is preferred, with the reason.

It never recommends compressing instruction text (the prompt's own static text) unless
asked to, nor code, math or contract text, nor a part that loses text the assertions
expect. And it never says "compress" on the small local model's word: only when the
compressed prompt has passed `devloop eval` on the production model; until then a part is a
candidate and the reasons say how to validate it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from devloop.evals.evalset import EvalSet, var_to_text
from devloop.money import format_usd
from devloop.pipeline.cache_order import CacheOrderResult
from devloop.pipeline.cache_prefix import template_where
from devloop.pipeline.cache_prices import CachePricing
from devloop.pipeline.compression_parts import (
    MIN_PART_TOKENS,
    Compressor,
    Part,
    ProtectedCompressor,
    document_vars,
    price_part,
    static_runs,
)
from devloop.pipeline.protect import prose_view
from devloop.tokens import Tokenizer

MIN_SAVING_SHARE = 0.15
MAX_PASS_RATE_DROP = 0.10
DEFAULT_RATE = 0.5
CALLS = 1000

ContentKind = Literal["prose", "code", "math", "contract"]

_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import|return\b|if .*:\s*$|for .*:\s*$|while |"
    r"function\b|const |let |var |public |private |#include|package |func |fn |SELECT |"
    r"@@ |[+-]{3} |diff --git)|[;{}]\s*$|=>|->|::|\(\)\s*[:{]|^\s{4,}\S")
_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_MATH = re.compile(r"\\(?:frac|sum|int|sqrt|begin\{(?:equation|align)|alpha|beta|lambda|cdot)|"
                   r"\$[^$\n]+\$|[∑∫√≤≥≠±∞∂∈×÷]")
_EQUATION_LINE = re.compile(
    r"^[\s\w().,^*/+\-=<>]*=[\s\w().,^*/+\-<>]*[+\-*/^][\s\w().,^*/+\-<>]*$")
_LEGAL = ("shall", "hereby", "hereinafter", "whereas", "indemnif", "liabilit", "governing law",
          "pursuant", "notwithstanding", "warrant", "the parties", "this agreement", "licensee",
          "licensor", "terminat", "in witness", "jurisdiction", "herein")


class CompressionPart(BaseModel):
    kind: Literal["static", "document"]
    where: str  # "system", "messages[1]" or "var:NAME"
    origin_tokens: float  # per call (a document: mean over the cases)
    compressed_tokens: float
    content: ContentKind
    in_cacheable_prefix: bool = False
    measured: bool = False  # False: not run through LLMLingua
    saved_usd_per_1k_calls: float | None = None  # if compressed, priced where it sits
    caching_saved_usd_per_1k_calls: float | None = None  # what caching saves on it
    preferred: Literal["compression", "caching", "neither"] = "neither"
    lost_expected: list[str] = Field(default_factory=list)  # assertion texts it dropped
    compress: bool = True
    blocked: bool = False  # a reason against it beyond "too small a saving"
    reason: str | None = None
    seconds_per_call: float | None = None  # documents: CPU time to compress one


class CompressionResult(BaseModel):
    status: Literal["pass", "warn", "fail", "error", "skipped"]
    origin_tokens: float
    compressed_tokens: float
    saved_usd_per_1k_calls: float | None
    recommendation: Literal["compress", "skip"]
    reasons: list[str]
    parts: list[CompressionPart] = Field(default_factory=list)
    rate: float = DEFAULT_RATE
    pass_rate: float | None = None
    compressed_pass_rate: float | None = None
    pass_rate_change: float | None = None
    seconds: float = 0.0
    model_convert_seconds: float | None = None
    model_load_seconds: float | None = None
    compressed_prompt: dict[str, Any] | None = None
    compressed_prompt_hash: str | None = None
    caching_saved_usd_per_1k_calls: float | None = None
    candidate: bool = False  # a part worth compressing, not yet validated
    validated: bool = False  # the compressed prompt passed `devloop eval` on production
    validate_with: str | None = None
    protected: str = "URLs, numbers, identifiers, tags, placeholders, quoted strings and code"


def classify_content(text: str) -> tuple[ContentKind, str]:
    """Code, math, contract text or prose, with the evidence found."""
    fenced = sum(len(m.group(0)) for m in _FENCE.finditer(text))
    rest = _FENCE.sub("", text)
    lines = [ln for ln in rest.splitlines() if ln.strip()]
    code_lines = [ln for ln in lines if _CODE_LINE.search(ln)]
    code_chars = fenced + sum(len(ln) for ln in code_lines)
    if text and code_chars / len(text) >= 0.15:
        return "code", f"{code_chars / len(text):.0%} of it is code"
    math_hits = len(_MATH.findall(text)) + sum(1 for ln in lines if _EQUATION_LINE.match(ln))
    if math_hits >= max(3, len(lines) // 5):
        return "math", f"{math_hits} formulas or math symbols"
    lowered = text.lower()
    legal = sorted({w for w in _LEGAL if w in lowered})
    if len(legal) >= 4:
        return "contract", "legal terms (" + ", ".join(legal[:5]) + ")"
    return "prose", ""


_TEXT_ASSERTIONS = frozenset({"equals", "contains", "icontains", "contains-any", "contains-all",
                              "icontains-any", "icontains-all", "starts-with"})


def expected_texts(evalset: EvalSet) -> list[tuple[str, str]]:
    """(case id, text) for every literal text a positive assertion looks for."""
    out: list[tuple[str, str]] = []
    for case in evalset.cases:
        for a in case.assertions:
            if a.negated or a.base_type not in _TEXT_ASSERTIONS:
                continue
            if a.base_type == "equals" and not isinstance(a.value, str):
                continue
            out.extend((case.id, v) for v in a.values() if v.strip())
    return out


def lost_texts(expected: list[tuple[str, str]], before: dict[str, str],
               after: dict[str, str]) -> list[str]:
    """Expected texts present (case-insensitively) before compression and gone after it.
    ``before``/``after`` map a case id to the text that was compressed for it."""
    lost: list[str] = []
    for case_id, text in expected:
        old, new = before.get(case_id, "").lower(), after.get(case_id, "").lower()
        if text.lower() in old and text.lower() not in new and text not in lost:
            lost.append(text)
    return lost


def _block(part: CompressionPart, reason: str, lost: list[str] | None = None) -> None:
    part.compress, part.blocked, part.reason = False, True, reason
    if lost:
        part.lost_expected = lost


def _compressed_evalset(evalset: EvalSet, templates: list[dict[str, str]],
                        doc_values: dict[str, list[str]]) -> EvalSet | None:
    data = evalset.model_dump(mode="json", by_alias=True, exclude_none=True)
    has_system = bool(evalset.prompt.system)
    if has_system:
        data["prompt"]["system"] = templates[0]["content"]
    body = templates[1:] if has_system else templates
    for k, t in enumerate(body):
        data["prompt"]["messages"][k]["content"] = t["content"]
    for name, values in doc_values.items():
        for case, value in zip(data["cases"], values, strict=True):
            case["vars"][name] = value
    try:
        return EvalSet.model_validate(data)
    except ValueError:  # compression produced something that reads as a placeholder
        return None


def _usd(x: float | None) -> str:
    return format_usd(x, unknown="an unknown amount")


async def analyse_compression(
    evalset: EvalSet,
    compressor: Compressor,
    tokenizer: Tokenizer,
    pricing: CachePricing,
    cache_order: CacheOrderResult,
    rerun: Callable[[EvalSet], Awaitable[float | None]] | None = None,
    baseline_pass_rate: float | None = None,
    rate: float = DEFAULT_RATE,
    *,
    allow_instructions: bool = False,
    validated: Callable[[str], bool] | None = None,
) -> CompressionResult:
    """Measure every compressible part (protected, windowed, cached), price it next to caching,
    and recommend. ``rerun`` (the local draft on the compressed prompt) is reported but never
    decides; ``validated(prompt_hash)`` says whether a prompt passed the production eval."""
    started = time.perf_counter()
    templates = evalset.prompt.templates()
    parts_in = static_runs(templates, tokenizer)
    docs = document_vars(evalset, tokenizer)
    if not parts_in and not docs:
        return CompressionResult(
            status="skipped", origin_tokens=0, compressed_tokens=0, saved_usd_per_1k_calls=0.0,
            recommendation="skip", rate=rate, seconds=round(time.perf_counter() - started, 3),
            reasons=[f"nothing to compress: no static text or document of {MIN_PART_TOKENS}+ "
                     "tokens"])
    run = compressor.compress if isinstance(compressor, ProtectedCompressor) else \
        ProtectedCompressor(compressor, tokenizer).compress
    scale = getattr(tokenizer, "scale", lambda n: n)
    expected = expected_texts(evalset)
    parts: list[CompressionPart] = []
    new_templates = [dict(t) for t in templates]
    doc_values: dict[str, list[str]] = {}
    applied: list[tuple[CompressionPart, Part, str | list[str]]] = []

    for item in sorted(parts_in, key=lambda r: (r.message, -r.start)):
        origin = float(scale(len(tokenizer.encode(item.text))))
        content, evidence = classify_content(prose_view(item.text))
        out = await asyncio.to_thread(run, item.text, rate)
        part = CompressionPart(kind="static", where=template_where(templates, item.message),
                               origin_tokens=origin, content=content, measured=True,
                               compressed_tokens=float(scale(len(tokenizer.encode(out)))))
        _price(part, item, evalset, cache_order, pricing, tokenizer)
        lost = lost_texts(expected, {c.id: item.text for c in evalset.cases},
                          {c.id: out for c in evalset.cases})
        if not allow_instructions:
            _block(part, "instruction text: never compressed by default (dropping tokens "
                         "from rules, names and examples changes what the model is told)")
        elif content != "prose":
            _block(part, f"{content}: {evidence}")
        elif lost:
            _block(part, _lost_reason(lost), lost)
        parts.append(part)
        applied.append((part, item, out))

    for name in docs:
        values = [var_to_text(c.vars.get(name)) for c in evalset.cases]
        origin = sum(scale(len(tokenizer.encode(v))) for v in values) / len(values)
        content, evidence = classify_content(prose_view("\n".join(values)))
        doc_started = time.perf_counter()
        outs = [await asyncio.to_thread(run, v, rate) if len(tokenizer.encode(v))
                >= MIN_PART_TOKENS else v for v in values]
        part = CompressionPart(
            kind="document", where=f"var:{name}", origin_tokens=origin, content=content,
            measured=True, seconds_per_call=round((time.perf_counter() - doc_started)
                                                  / len(values), 3),
            compressed_tokens=sum(scale(len(tokenizer.encode(o))) for o in outs) / len(outs))
        item = Part("document", next((i for i, t in enumerate(templates)
                                      if "{{" + name + "}}" in t["content"]), 0), 0, 0, "",
                    var=name)
        _price(part, item, evalset, cache_order, pricing, tokenizer)
        lost = lost_texts(expected, {c.id: v for c, v in zip(evalset.cases, values, strict=True)},
                          {c.id: o for c, o in zip(evalset.cases, outs, strict=True)})
        if content != "prose":
            _block(part, f"{content}: {evidence}")
        elif lost:
            _block(part, _lost_reason(lost), lost)
        parts.append(part)
        applied.append((part, item, outs))

    reasons: list[str] = []
    for p in parts:
        share = 1 - p.compressed_tokens / p.origin_tokens if p.origin_tokens else 0.0
        if not p.blocked and (share < MIN_SAVING_SHARE or p.preferred != "compression"):
            p.compress = False
            p.reason = (f"saves only {share:.0%} of its tokens" if share < MIN_SAVING_SHARE
                        else "caching saves more on it")
        compare = (f"compressing it would save {_usd(p.saved_usd_per_1k_calls)} per 1,000 calls "
                   f"({p.origin_tokens:,.0f} -> {p.compressed_tokens:,.0f} tokens), caching "
                   f"saves {_usd(p.caching_saved_usd_per_1k_calls)}")
        if p.compress:
            why = ("it changes on every call" if not p.caching_saved_usd_per_1k_calls
                   else "it is not all read from cache")
            reasons.append(f"{p.where}: {compare}: compression is the larger saving ({why})")
        else:
            why = {"caching": "caching is the larger saving"}.get(p.preferred, "")
            reasons.append(f"{p.where}: do not compress: {p.reason}; {compare}"
                           + (f" ({why})" if why and p.reason != "caching saves more on it"
                              else ""))

    chosen = [p for p in parts if p.compress]
    ship = [dict(t) for t in new_templates]
    for p, item, out in applied:
        if not p.compress:
            continue
        if item.kind == "static" and isinstance(out, str):
            c = ship[item.message]["content"]
            ship[item.message]["content"] = c[:item.start] + out + c[item.end:]
        elif isinstance(out, list):
            doc_values[item.var or ""] = out
    compressed_set = _compressed_evalset(evalset, ship, doc_values) if chosen else None
    ok_validated = False
    if compressed_set is not None:
        ok_validated = bool(validated and validated(compressed_set.prompt_hash))
        saving = sum(p.saved_usd_per_1k_calls or 0.0 for p in chosen)
        names = ", ".join(p.where for p in chosen)
        if ok_validated:
            reasons.insert(0, f"compress {names}: saves {_usd(saving)} per 1,000 calls; "
                              f"validated: the compressed prompt passed devloop eval on "
                              f"{cache_order.production_model}")
        else:
            reasons.insert(0, f"candidate: compress {names} (saves {_usd(saving)} per 1,000 "
                              "calls), not validated: the small local model's pass rate is no "
                              "evidence; run `devloop eval` on the production model "
                              f"({cache_order.production_model}) with the compressed prompt "
                              f"(hash {compressed_set.prompt_hash[:12]}) and check again")
    compressed_pass = None
    if rerun is not None and compressed_set is not None:
        compressed_pass = await rerun(compressed_set)  # informative only
    saved = None if pricing.price is None else round(
        sum(p.saved_usd_per_1k_calls or 0.0 for p in chosen), 6)
    caching = None if pricing.price is None else round(
        sum(p.caching_saved_usd_per_1k_calls or 0.0 for p in parts), 6)
    warn = any(p.blocked and (p.lost_expected or p.content != "prose") for p in parts)
    return CompressionResult(
        status="warn" if warn else "pass",
        origin_tokens=round(sum(p.origin_tokens for p in parts), 1),
        compressed_tokens=round(sum(p.compressed_tokens for p in parts), 1),
        saved_usd_per_1k_calls=saved,
        recommendation="compress" if chosen and ok_validated else "skip",
        reasons=reasons, parts=parts, rate=rate, pass_rate=baseline_pass_rate,
        compressed_pass_rate=compressed_pass,
        pass_rate_change=(None if compressed_pass is None or baseline_pass_rate is None
                          else round(compressed_pass - baseline_pass_rate, 4)),
        seconds=round(time.perf_counter() - started, 3),
        model_convert_seconds=getattr(getattr(compressor, "inner", compressor),
                                      "convert_seconds", None),
        model_load_seconds=getattr(getattr(compressor, "inner", compressor), "load_seconds",
                                   None),
        compressed_prompt=(compressed_set.prompt.model_dump(mode="json", exclude_none=True)
                           if compressed_set is not None else None),
        compressed_prompt_hash=compressed_set.prompt_hash if compressed_set else None,
        caching_saved_usd_per_1k_calls=caching,
        candidate=compressed_set is not None, validated=ok_validated,
        validate_with=(f"devloop eval on {cache_order.production_model} with the compressed "
                       "prompt" if compressed_set is not None else None),
    )


def _lost_reason(lost: list[str]) -> str:
    shown = ", ".join(repr(t) for t in lost[:4]) + (" ..." if len(lost) > 4 else "")
    return f"it drops text the assertions expect ({shown})"


def _price(part: CompressionPart, item: Part, evalset: EvalSet, cache: CacheOrderResult,
           pricing: CachePricing, tokenizer: Tokenizer) -> None:
    """Both savings for this part, priced where it sits after the suggested reorder."""
    at, full, inside = price_part(item, evalset, cache, pricing, tokenizer, part.origin_tokens)
    part.in_cacheable_prefix = inside
    if at is None or full is None:
        return
    part.saved_usd_per_1k_calls = round((part.origin_tokens - part.compressed_tokens) * at
                                        * CALLS, 6)
    part.caching_saved_usd_per_1k_calls = round(max(0.0, part.origin_tokens * (full - at))
                                                * CALLS, 6)
    comp, cach = part.saved_usd_per_1k_calls, part.caching_saved_usd_per_1k_calls
    part.preferred = ("compression" if comp > cach and comp > 0 else
                      "caching" if cach > 0 else "neither")
