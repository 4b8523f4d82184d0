"""Stage 2, compression: would LLMLingua make this prompt cheaper without making it worse?

Only the compressible parts are compressed: long runs of static text (a style guide, a
policy, background) and long per-call documents (vars whose values run to hundreds of
tokens). Instructions, short text and placeholders are left alone. The stage reports
tokens before and after, dollars saved per 1,000 calls at the production model's prices,
and a recommendation with its reasons. It recommends against compressing:
- code, math and contract text (token dropping changes meaning there);
- text inside a cacheable prefix: cached tokens bill at the cache-read price, so compressing
  them saves little, can shrink the prefix below the provider minimum, and compressing at
  request time would change the prefix on every call and break the cache;
- a compression that lowers the draft pass rate (the draft runs again on the result).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from devloop.evals.evalset import EvalSet, var_to_text
from devloop.pipeline.cache_order import (
    MIN_STATIC_AFTER_TOKENS,
    CacheOrderResult,
    segments,
    token_position,
    var_sets,
)
from devloop.pipeline.cache_prices import CachePricing
from devloop.pipeline.lingua import LinguaCompressor
from devloop.tokens import Tokenizer

MIN_PART_TOKENS = 200  # shorter text is not worth a model pass (nor the risk)
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
    measured: bool = False  # False: not run through LLMLingua (blocked before it)
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


@dataclass(slots=True)
class _Run:
    message: int
    start: int
    end: int
    text: str


def static_runs(templates: list[dict[str, str]], tokenizer: Tokenizer) -> list[_Run]:
    """Contiguous static text (no placeholder, timestamp or id) of MIN_PART_TOKENS or more."""
    runs: list[_Run] = []
    for i, t in enumerate(templates):
        content = t["content"]
        group: list[tuple[int, int]] = []
        for seg in [*segments(content, tokenizer, MIN_STATIC_AFTER_TOKENS), None]:
            if seg is not None and not seg.dynamic:
                group.append((seg.start, seg.end))
                continue
            if group:
                start, end = group[0][0], group[-1][1]
                if len(tokenizer.encode(content[start:end])) >= MIN_PART_TOKENS:
                    runs.append(_Run(i, start, end, content[start:end]))
            group = []
    return runs


def document_vars(evalset: EvalSet, tokenizer: Tokenizer) -> list[str]:
    """Vars with a value of MIN_PART_TOKENS or more in some case: per-call documents."""
    out = []
    for name in evalset.prompt.variables():
        sizes = [len(tokenizer.encode(var_to_text(c.vars.get(name)))) for c in evalset.cases]
        if sizes and max(sizes) >= MIN_PART_TOKENS:
            out.append(name)
    return out


def _compress_document(compressor: LinguaCompressor, tokenizer: Tokenizer, text: str,
                       rate: float) -> str:
    """Long values are compressed; short ones are not worth it and stay as they are."""
    if len(tokenizer.encode(text)) < MIN_PART_TOKENS:
        return text
    return compressor.compress(text, rate).text


def _block(part: CompressionPart, reason: str, lost: list[str] | None = None) -> None:
    part.compress, part.blocked, part.reason = False, True, reason
    if lost:
        part.lost_expected = lost


def _lost_reason(lost: list[str]) -> str:
    shown = ", ".join(repr(t) for t in lost[:4]) + (" ..." if len(lost) > 4 else "")
    return f"it drops text the assertions expect ({shown})"


def _where(templates: list[dict[str, str]], message: int) -> str:
    has_system = bool(templates) and templates[0]["role"] == "system"
    if has_system and message == 0:
        return "system"
    return f"messages[{message - 1 if has_system else message}]"


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


async def analyse_compression(
    evalset: EvalSet,
    compressor: LinguaCompressor,
    tokenizer: Tokenizer,
    pricing: CachePricing,
    cache_order: CacheOrderResult | None = None,
    rerun: Callable[[EvalSet], Awaitable[float | None]] | None = None,
    baseline_pass_rate: float | None = None,
    rate: float = DEFAULT_RATE,
) -> CompressionResult:
    """Compress the compressible parts, price the saving, re-run the draft, recommend.

    ``rerun`` runs the draft stage on an eval set and returns its pass rate."""
    started = time.perf_counter()
    templates = evalset.prompt.templates()
    tools = evalset.prompt.tools
    runs = static_runs(templates, tokenizer)
    docs = document_vars(evalset, tokenizer)
    if not runs and not docs:
        return CompressionResult(
            status="skipped", origin_tokens=0, compressed_tokens=0, saved_usd_per_1k_calls=0.0,
            recommendation="skip", rate=rate, seconds=round(time.perf_counter() - started, 3),
            reasons=[f"nothing to compress: no static text or document of {MIN_PART_TOKENS}+ "
                     "tokens"])

    minimum = pricing.min_cacheable_tokens
    best_prefix = 0
    if cache_order is not None:
        best_prefix = max(cache_order.cacheable_prefix_tokens, cache_order.reordered_prefix_tokens)
    prefix_cacheable = minimum is not None and best_prefix >= minimum
    vars_a, _ = var_sets(evalset)
    price = pricing.price

    expected = expected_texts(evalset)
    parts: list[CompressionPart] = []
    new_templates = [dict(t) for t in templates]
    saved_usd = 0.0 if price is not None else None
    # Replace runs from the end of each message so earlier offsets stay valid.
    for run in sorted(runs, key=lambda r: (r.message, -r.start)):
        origin = len(tokenizer.encode(run.text))
        content, evidence = classify_content(run.text)
        position = token_position(templates, tools, vars_a, run.message, run.start, tokenizer)
        in_prefix = prefix_cacheable and position < best_prefix
        part = CompressionPart(kind="static", where=_where(templates, run.message),
                               origin_tokens=origin, compressed_tokens=origin, content=content,
                               in_cacheable_prefix=in_prefix)
        parts.append(part)
        # Text that must not be compressed is not run through the model at all: the
        # answer would be "skip" whatever it saved, and `watch` re-checks on every edit.
        if content != "prose":
            _block(part, f"{content}: {evidence}")
            continue
        if in_prefix:
            _block(part, f"inside the cacheable prefix ({best_prefix} tokens, provider minimum "
                         f"{minimum}): cached tokens bill at the cache-read price, and "
                         "compressing at request time would change the prefix and break the "
                         "cache")
            continue
        out = await asyncio.to_thread(compressor.compress, run.text, rate)
        part.measured, part.compressed_tokens = True, len(tokenizer.encode(out.text))
        lost = lost_texts(expected, {c.id: run.text for c in evalset.cases},
                          {c.id: out.text for c in evalset.cases})
        if lost:
            _block(part, _lost_reason(lost), lost)
        if saved_usd is not None and price is not None:
            saved_usd += (origin - part.compressed_tokens) * price.input * CALLS
        c = new_templates[run.message]["content"]
        new_templates[run.message]["content"] = c[:run.start] + out.text + c[run.end:]

    doc_values: dict[str, list[str]] = {}
    for name in docs:
        values = [var_to_text(c.vars.get(name)) for c in evalset.cases]
        origin = sum(len(tokenizer.encode(v)) for v in values) / len(values)
        content, evidence = classify_content("\n".join(values))
        part = CompressionPart(kind="document", where=f"var:{name}", origin_tokens=origin,
                               compressed_tokens=origin, content=content)
        parts.append(part)
        if content != "prose":
            _block(part, f"{content}: {evidence}")
            continue
        doc_started = time.perf_counter()
        outs = [await asyncio.to_thread(_compress_document, compressor, tokenizer, v, rate)
                for v in values]
        part.seconds_per_call = round((time.perf_counter() - doc_started) / len(values), 3)
        part.measured = True
        part.compressed_tokens = sum(len(tokenizer.encode(o)) for o in outs) / len(outs)
        lost = lost_texts(expected, {c.id: v for c, v in zip(evalset.cases, values, strict=True)},
                          {c.id: o for c, o in zip(evalset.cases, outs, strict=True)})
        if lost:
            _block(part, _lost_reason(lost), lost)
        if saved_usd is not None and price is not None:
            saved_usd += (origin - part.compressed_tokens) * price.input * CALLS
        doc_values[name] = outs

    reasons: list[str] = []
    origin_total = sum(p.origin_tokens for p in parts)
    small_total = sum(p.compressed_tokens for p in parts)
    ok = [p for p in parts if p.compress]
    share = 1 - sum(p.compressed_tokens for p in ok) / max(sum(p.origin_tokens for p in ok), 1)
    if ok and share < MIN_SAVING_SHARE:
        for p in ok:
            p.compress, p.reason = False, f"saves only {share:.0%} of its tokens"
        ok = []
    for p in parts:
        if p.reason:
            reasons.append(f"{p.where}: do not compress: {p.reason}")

    # Re-run the draft on what would be shipped: the recommended parts (or, when none is,
    # everything that was compressed, to show what compressing would do).
    applied = {p.where for p in (ok or [p for p in parts if p.measured])}
    ship_templates = [
        new_templates[i] if _where(templates, i) in applied else dict(t)
        for i, t in enumerate(templates)
    ]
    ship_docs = {n: v for n, v in doc_values.items() if f"var:{n}" in applied}
    compressed_set = _compressed_evalset(evalset, ship_templates, ship_docs)
    compressed_pass: float | None = None
    if rerun is not None and compressed_set is not None and applied:
        compressed_pass = await rerun(compressed_set)
    change = None
    if compressed_pass is not None and baseline_pass_rate is not None:
        change = round(compressed_pass - baseline_pass_rate, 4)
        if ok and change < -MAX_PASS_RATE_DROP:
            reasons.append(f"draft pass rate drops from {baseline_pass_rate:.0%} to "
                           f"{compressed_pass:.0%} on the compressed prompt")
            ok = []

    recommendation: Literal["compress", "skip"] = "compress" if ok else "skip"
    if ok:
        advice = []
        if any(p.kind == "static" for p in ok):
            advice.append("compress the static text once and ship the result")
        docs_ok = [p for p in ok if p.kind == "document"]
        if docs_ok:
            cpu = sum(p.seconds_per_call or 0.0 for p in docs_ok)
            advice.append(f"compress documents per call (about {cpu:.1f}s of CPU each)")
        reasons.insert(0, "compress " + ", ".join(p.where for p in ok) + f": {share:.0%} fewer "
                       "tokens; " + "; ".join(advice))
    blocked = any(p.blocked for p in parts) or (
        change is not None and change < -MAX_PASS_RATE_DROP)
    status: Literal["pass", "warn"] = "warn" if recommendation == "skip" and blocked else "pass"
    return CompressionResult(
        status=status,
        origin_tokens=round(origin_total, 1),
        compressed_tokens=round(small_total, 1),
        saved_usd_per_1k_calls=None if saved_usd is None else round(saved_usd, 6),
        recommendation=recommendation,
        reasons=reasons,
        parts=parts,
        rate=rate,
        pass_rate=baseline_pass_rate,
        compressed_pass_rate=compressed_pass,
        pass_rate_change=change,
        seconds=round(time.perf_counter() - started, 3),
        model_convert_seconds=compressor.convert_seconds,
        model_load_seconds=compressor.load_seconds,
        compressed_prompt=(compressed_set.prompt.model_dump(mode="json", exclude_none=True)
                           if compressed_set is not None and applied else None),
    )

