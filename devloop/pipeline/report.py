"""Human-readable output of `devloop check` and `devloop watch` (the JSON form is
CheckReport.to_json)."""

from __future__ import annotations

from typing import Any

from devloop.money import format_usd
from devloop.pipeline.cache_order import CacheOrderResult
from devloop.pipeline.checker import STAGES, CheckReport
from devloop.pipeline.compression import CompressionResult
from devloop.pipeline.draft import DraftResult
from devloop.pipeline.reorder import dump_prompt

LABEL_WIDTH = 12


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _draft(r: DraftResult) -> list[str]:
    answered = [c for c in r.cases if c.passed is not None]
    passed = sum(1 for c in answered if c.passed)
    models = ", ".join(r.models) or "no model answered"
    head = (f"pass rate {_pct(r.pass_rate)} ({passed}/{len(r.cases)}, threshold "
            f"{r.threshold:.0%}, informative) on {r.tier} ({models}); would have cost "
            f"{format_usd(r.would_cost_usd)} on {r.production_model}")
    lines = [head]
    if r.cached_tokens:
        lines.append(f"{r.cached_tokens:,} of {r.prompt_tokens:,} prompt tokens reused from the "
                     f"local model's prefix cache; {r.seconds:.1f}s")
    if r.errors:
        first = next((c.error for c in r.cases if c.error), "")
        lines.append(f"{r.errors} case(s) failed to run: {first}")
    for c in r.cases:
        if c.passed is False and c.reason:
            lines.append(f"x {c.id}: {c.reason}")
    return lines


def _cache(r: CacheOrderResult, show_reordered: bool) -> list[str]:
    minimum = "none known" if r.min_cacheable_tokens is None else f"{r.min_cacheable_tokens:,}"
    lines = [f"cacheable prefix {r.cacheable_prefix_tokens:,} of {r.prompt_tokens:,.0f} tokens "
             f"(provider minimum {minimum}); {format_usd(r.cost_per_1k_calls_usd)} per 1,000 calls "
             f"on {r.production_model}, {_pct(r.cache_read_share)} of input read from cache"
             + (f" ({r.ttl} lifetime)" if r.ttl else ""),
             f"counts input and output: {r.output_tokens_source}; tokens: {r.tokenizer}; "
             f"{r.assumptions}"]
    rates = ", ".join(f"{v.var} {v.rate}{'' if v.source == 'declared' else ' (inferred)'}"
                      for v in r.variables)
    if rates:
        lines.append(f"variables: {rates}")
    for e in r.dynamic_before_static:
        lines.append(f"! {e.kind} {e.text} ({e.rate}) at token {e.position:,} comes before "
                     f"{e.static_after_tokens:,} tokens of slower-changing text")
    if r.reordered_prefix_tokens != r.cacheable_prefix_tokens or r.block_split:
        lines.append(f"suggested: prefix {r.reordered_prefix_tokens:,} tokens, "
                     f"{format_usd(r.reordered_cost_per_1k_calls_usd)} per 1,000 calls, "
                     f"{_pct(r.reordered_cache_read_share)} read from cache"
                     + (f" ({r.reordered_ttl} lifetime)" if r.reordered_ttl else ""))
    lines.extend(n for n in r.notes if not n.startswith("{{") or "inferred" not in n)
    if r.reordered_diff and show_reordered:
        lines.append("suggested prompt:")
        lines.extend("    " + ln for ln in dump_prompt(r.reordered_prompt or {}).splitlines())
        lines.append("as a diff:")
        lines.extend("    " + ln for ln in r.reordered_diff.splitlines())
    elif r.reordered_diff:
        lines.append("run with --show-reordered to print the suggested prompt and its diff")
    return lines


def _compression(r: CompressionResult) -> list[str]:
    if r.status == "skipped":
        return [r.reasons[0] if r.reasons else "nothing to compress"]
    saved = r.origin_tokens - r.compressed_tokens
    share = saved / r.origin_tokens if r.origin_tokens else 0.0
    lines = [f"{r.origin_tokens:,.0f} -> {r.compressed_tokens:,.0f} tokens (-{share:.0%}) if "
             f"compressed ({r.protected} kept); recommendation: {r.recommendation}",
             f"per 1,000 calls: compression saves {format_usd(r.saved_usd_per_1k_calls)} on the "
             f"parts it may touch; caching saves {format_usd(r.caching_saved_usd_per_1k_calls)} on "
             "the same text"]
    lines.extend(r.reasons)
    if r.compressed_pass_rate is not None:
        lines.append(f"local draft pass rate {_pct(r.pass_rate)} -> {_pct(r.compressed_pass_rate)}"
                     " on the compressed prompt (informative only: not a validation)")
    return lines


def render_stage(stage: str, result: Any, show_reordered: bool = False) -> list[str]:
    """One stage as lines; the first carries the stage name and status."""
    if result is None:
        body = ["not run"]
        status = "skipped"
    else:
        status = getattr(result, "status", "error")
        if isinstance(result, DraftResult):
            body = _draft(result)
        elif isinstance(result, CacheOrderResult):
            body = _cache(result, show_reordered)
        elif isinstance(result, CompressionResult):
            body = _compression(result)
        else:
            body = [str(getattr(result, "error", result))]
    pad = " " * (LABEL_WIDTH + 9)
    return [f"{stage:<{LABEL_WIDTH}} {status:<7} {body[0]}", *(pad + b for b in body[1:])]


def render_report(report: CheckReport, show_reordered: bool = False) -> str:
    lines = [f"{report.file}  {report.name}  prompt {report.prompt_hash[:12]}"]
    for stage in STAGES:
        lines.extend("  " + ln for ln in render_stage(stage, report.stages.get(stage),
                                                        show_reordered))
    return "\n".join(lines) + "\n"
