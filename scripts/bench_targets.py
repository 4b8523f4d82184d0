"""The speed targets of issues 15, 18 and 21, checked against the newest benchmark results.

Reads the newest ``.bench/results/bench_gateway-*.json`` (run with ``--baseline``),
``bench_ladder-*.json`` and ``bench_compression_rss-*.json`` (``make bench`` writes all
three, then runs this) and prints one table: each target, the figure, and whether it is
met. Exit status 0 either way: a benchmark reports, it does not gate.

    .venv/bin/python scripts/bench_targets.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / ".bench" / "results"
# docs/benchmarks.md's first tables (a938a20, 2026-11-24): what "within 10%" is measured
# against when a run has no interleaved baseline.
DOC_ADDED_P50_MS = 1.00
DOC_CACHE_RPS_C10 = 4105


def newest(prefix: str) -> dict[str, Any] | None:
    files = sorted(RESULTS.glob(f"{prefix}-*.json"))
    return json.loads(files[-1].read_text()) if files else None


def row(rows: list[tuple[str, str, str, str]], what: str, figure: str, target: str,
        ok: bool | None) -> None:
    rows.append((what, figure, target, "-" if ok is None else "yes" if ok else "no"))


def gateway_rows(g: dict[str, Any], rows: list[tuple[str, str, str, str]]) -> None:
    compare = g.get("compare", {})
    for load in ("sequential", "concurrency 10", "concurrency 50"):
        t = compare.get(f"non-streaming, {load}")
        if not t or "devloop" not in t:
            continue
        dl = t["devloop"]
        if "minimal" in t:
            over = dl["added_p50"] - t["minimal"]["added_p50"]
            row(rows, f"added p50 over the minimal passthrough, {load}", f"{over:.2f} ms",
                "<= 0.3 ms", over <= 0.3)
        for other, limit in (("portkey", 0.3), ("litellm", 0.1)):
            if f"ratio_p50_to_{other}" in dl:
                r = dl[f"ratio_p50_to_{other}"]
                row(rows, f"added p50 / {other}'s, {load}", f"{r:.3f}", f"<= {limit}", r <= limit)
        if "baseline" in t:
            r = dl["ratio_p50_to_baseline"]
            row(rows, f"added p50 / the baseline's (same run), {load}", f"{r:.2f}", "<= 1.10",
                r <= 1.10)
        elif load == "sequential":
            row(rows, "added p50, sequential (docs: 1.00 ms)", f"{dl['added_p50']:.2f} ms",
                f"<= {DOC_ADDED_P50_MS * 1.1:.2f} ms", dl["added_p50"] <= DOC_ADDED_P50_MS * 1.1)
        if load == "concurrency 10" and "minimal" in t and "rps" in dl:
            share = dl["rps"] / t["minimal"]["rps"]
            row(rows, "throughput at 10 in flight / the passthrough's", f"{share:.0%}", ">= 70%",
                share >= 0.7)
    for load in ("sequential", "concurrency 10", "concurrency 50"):
        t = compare.get(f"streaming TTFT, {load}")
        if not t or "devloop" not in t or "baseline" not in t:
            continue
        r = t["devloop"]["ratio_p50_to_baseline"]
        row(rows, f"streaming TTFT added p50 / the baseline's, {load}", f"{r:.2f}", "<= 1.10",
            r <= 1.10)
        if "stream_total_p50" in t["devloop"] and "stream_total_p50" in t["baseline"]:
            whole = t["devloop"]["stream_total_p50"] / t["baseline"]["stream_total_p50"]
            row(rows, f"whole stream p50 / the baseline's, {load}", f"{whole:.2f}", "", None)
    cache = g.get("cache", {})
    if "devloop" in cache and "baseline" in cache:
        for load, key in (("sequential", "p50"), ("concurrency 10", "rps"),
                          ("concurrency 50", "rps")):
            mine, base = cache["devloop"][load][key], cache["baseline"][load][key]
            ratio = mine / base
            ok = ratio <= 1.10 if key == "p50" else ratio >= 0.90
            row(rows, f"cache hits {key}, {load} / the baseline's (same run)",
                f"{mine:.2f} / {base:.2f} = {ratio:.2f}", "<= 1.10" if key == "p50" else
                ">= 0.90", ok)
    elif "concurrency 10" in cache:
        rps = cache["concurrency 10"]["rps"]
        row(rows, "cache hits at 10 in flight (docs: 4,105 req/s)", f"{rps:,.0f} req/s",
            f">= {DOC_CACHE_RPS_C10 * 0.9:,.0f}", rps >= DOC_CACHE_RPS_C10 * 0.9)


def ladder_rows(lad: dict[str, Any], rows: list[tuple[str, str, str, str]]) -> None:
    for name, r in lad.get("ladder", {}).items():
        target = name == "after editing a case's tail"
        row(rows, f"ladder: {name}", f"{r['seconds']:.1f} s", "<= 15 s" if target else "",
            r["seconds"] <= 15 if target else None)
    on = lad.get("embedded", {}).get("on")
    if on:
        first, second, again = on["A first turn"], on["A second turn"], on["A again"]
        row(rows, f"embedded first turn, {first['prompt_tokens']:,}-token prompt",
            f"{first['seconds']:.1f} s", "", None)
        row(rows, f"embedded second turn (cached {second['cached_tokens']:,})",
            f"{second['seconds']:.1f} s", "", None)
        ratio = again["seconds"] / first["seconds"]
        row(rows, f"A, B, A: return to A / first A (cached {again['cached_tokens']:,})",
            f"{ratio:.0%}", "<= 25%, cached > 2,000",
            ratio <= 0.25 and again["cached_tokens"] > 2000)


def main() -> int:
    rows: list[tuple[str, str, str, str]] = []
    found = {name: newest(name) for name in
             ("bench_gateway", "bench_ladder", "bench_compression_rss")}
    if found["bench_gateway"]:
        gateway_rows(found["bench_gateway"], rows)
    if found["bench_ladder"]:
        ladder_rows(found["bench_ladder"], rows)
    comp = found["bench_compression_rss"]
    if comp:
        row(rows, f"compression peak RSS ({comp['origin_tokens']:,} tokens)",
            f"{comp['peak_rss_mb']:,.0f} MB", "<= 1,500 MB", comp["peak_rss_mb"] <= 1500)
    missing = [name for name, v in found.items() if v is None]
    print("\n## Speed targets (issues 15, 18, 21)\n")
    print("| measure | figure | target | met |\n|---|---:|---:|---|")
    for what, figure, target, ok in rows:
        print(f"| {what} | {figure} | {target} | {ok} |")
    if missing:
        print(f"\nno results yet from: {', '.join(missing)} (run them, or `make bench`)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
